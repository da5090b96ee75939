"""Triton kernels and their launchers (installed as ``aae_fast.kernels``); no aae_fast imports."""
