"""The dock camera station: watch a camera, inspect each placed item once, never lose one.

Modules (each small, each testable on its own):

- ``source``: frame sources (camera index, RTSP/HTTP URL, video file, folder) with
  reconnect and capped exponential backoff.
- ``trigger``: presence trigger (background model + EMPTY/ARRIVING/INSPECTED state
  machine): one inspection per placement; hands and flicker do not trigger.
- ``select``: the K sharpest frames of the still window (variance of the Laplacian), the
  item crop.
- ``identify``: QR code on the parcel label, else stdin / ``--return-id``, else unmatched.
- ``process``: capture -> identify -> crop -> JPEG -> dock quality gate -> sink.
- ``spool`` / ``deliver``: durable SQLite spool and the delivery worker (httpx, backoff,
  idempotency keys; at-least-once from the station, exactly-once by the server).
- ``report`` / ``output``: JSON-lines events, annotated snapshot with the damage
  heatmap, printable routing label with a QR code of the inspection id.
- ``station``: the frame loop and the worker thread (bounded queue); ``app`` wires a run.
- ``sim`` / ``simdraw``: the dock simulator (video + ground-truth JSON).

API mode: the station posts the selected frames and the **service** grades them with its
model and policy (one source of truth for stored decisions); locally it only runs the
model-free dock quality gate to choose which frames to send. Standalone mode grades with
``vision.pipeline.Grader(profile="dock")`` and ``serving.policy.decide_disposition``.
Nothing here imports torch.
"""
