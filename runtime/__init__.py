"""Runs PAW programs: SmolLM2 base GGUF plus a program's LoRA adapter, via llama.cpp.

Importable without Django so the same code serves the web worker and anyone who
downloads a program to run it locally.
"""
