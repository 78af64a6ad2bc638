"""Accuracy of the service's own pipeline on labelled images: `gridwatch evaluate`.

`datasets` reads labelled sets (YOLO boxes, crowd head points), `mot` MOT ground truth and
`clips` the clip labels of benchmarks/labels with their scoring of analyze output; `sets` says
how each shared set's classes map to the pipeline's class names, `splits` keeps the fixed
development/validation split, `scoring` turns boxes into figures with supervision's metrics
and `runner` feeds each image through the detection core as a deployment builds it.
"""
