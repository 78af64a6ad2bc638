"""The main process's side of the worker boundary: what it keeps of each camera from its
worker's messages (`cameras`), when it asks for previews (`previews`), and how events become
incidents off the receiving thread (`incidents`). The web side reads it through the
protocols of `gridwatch.web.views`, never by importing it."""
