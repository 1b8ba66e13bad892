"""Training data: reading files (`readers`), the legacy data checker (`prepare`), the dataset
builder (`builder`) and the datasets shipped inside the package (`bundled`).

Submodules are imported on use, not here, so `import tunelab.data` stays cheap (no pandas/sklearn).
"""
