# On PYTHONPATH for tests of the local runtime: any import of Django fails.
raise ImportError("the local runtime must not need Django")
