"""The web dashboard and playground at /ui (routes.py): server-rendered page shells whose own
JavaScript fills them from the JSON API with the user's bearer key."""
