"""The elevator e-bike guard: detections, the model runtime, confirmation and the hold.

Imported only when a camera is configured: OpenCV and onnxruntime stay out of a gateway
that has no camera.
"""
