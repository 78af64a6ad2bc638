"""Model backends. Each turns a BGR image into `Detection`s in that image's pixels."""
