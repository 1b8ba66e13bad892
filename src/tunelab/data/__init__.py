"""Training data: reading files (`readers`), the legacy data checker (`prepare`), the dataset
builder (`builder`), the datasets shipped inside the package (`bundled`) and every rule about
classification labels (`labels`).

Submodules are imported on use, not here, so `import tunelab.data` stays cheap (no pandas/sklearn).
"""
