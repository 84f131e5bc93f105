"""The embedding server: Orange's protocol and a batch protocol over HTTP,
dynamic batching on a GPU or CPU.

Run it with ``orange-embedding-server`` or
``python -m orangecontrib.imageanalytics.server``; build the application in
code with :func:`orangecontrib.imageanalytics.server.app.create_app`.
Importing this package does not import Starlette or torch.
"""
