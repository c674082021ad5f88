"""Export side of clear-sdk: checkpoint -> ONNX graphs -> TensorRT engines -> model bundle.

Installed as ``clear_sdk.export``; needs the ``[export]`` extra.
"""
