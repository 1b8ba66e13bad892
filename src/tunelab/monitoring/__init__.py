"""Watching served models and turning feedback into the next fine-tune (issue 12).

- `stats`: the statistics, as pure functions over arrays (drift tests, data quality, the
  label-free performance estimate, realized performance, windows);
- `reference`: what a model is compared with (its training/validation files, scored once, cached);
- `report`: `tunelab monitor`: the prediction log cut into windows, each checked against thresholds;
- `feedback`: labels people give (add, import, the review queue) and the export back to training;
- `plots`: the monitor's timeline PNG.

The prediction log itself is in tunelab.store.predictions; the server records into it.
"""
