"""The jobs layer: submitting, following and showing fine-tuning jobs, once, for every caller.

The CLI (`tunelab api …`, `tunelab demo`), the HTTP server (`/v1/fine_tuning/jobs`, `/v1/fine-tunes`,
`/v1/files`, `/v1/models`) and the Python API for notebooks (`tunelab.create_job`, …) all go
through these modules, so a job looks and behaves the same whoever created it:

- `files`: uploads, the files a running job still needs, a job's results CSV ("a path or a file
  id" is resolved one layer down, by tunelab.data.files, as planning and evaluation need it too);
- `submit`: validate and plan (training.planning), persist, wake the worker;
- `follow`: a job's events until it ends (sync for the CLI, async for the server's stream);
- `progress`: the progress bar and event lines the CLI and notebooks show while following;
- `views`: job, event, checkpoint, file and model objects as plain dicts, in the legacy and the
  current OpenAI shapes;
- `paging`: cursor pagination (`after`, `limit`) of every list;
- `api`: the documented Python API (`Job`, `create_job`, `evaluate`, …), exported by `tunelab`.

It sits above training and evaluation and below the CLI and the server (tests/test_layering.py):
nothing here imports `tunelab.cli` or `tunelab.server`; errors are the typed ones of tunelab.errors.
"""
