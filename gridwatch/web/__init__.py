"""The web side: HTTP API routers, the console, the live feed, WebRTC and the metrics route.

It runs in the main process and reads the service through small typed views; it never opens
a camera itself.
"""
