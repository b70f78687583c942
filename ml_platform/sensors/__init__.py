"""The sensors: what starts a pipeline's runs, and what announces them. One module per job:

- ``landing``: each new or corrected landing file → an ingest run of its day, then one retraining;
- ``scoring``: each new scoring file → a batch scoring run (``scoring``);
- ``variants``: a run per variant of each new train split, then one select-and-deploy run;
- ``monitoring``: each ended day of the prediction log → served[day] (``monitoring``); each outcome
  file → outcomes[day], then live_metrics of the days it labels (``feedback``);
- ``retraining``: a retraining run when the drift check warned, or the live metric decayed, for days;
- ``notifications``: failed and finished runs, and each deploy, to the pipeline's channels.

``base`` holds what they share (one decorator factory, the run request, the tick's result) and
``cursors`` each kind's cursor as a typed record.
"""
