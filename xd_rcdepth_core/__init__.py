"""XD-RCDepth without ROS: models, data, training, distillation, evaluation, deployment.

    frame.py, geometry.py, radar.py    the Frame contract, transforms and projection, the radar image
    config.py                          every number the method depends on, with its source
    data/, synthetic/, groundtruth.py  dataset adapters, the cache and torch Dataset; the synthetic world
    models/, distill/, training/       networks; Grad-CAM and the X-KD / D2-KD losses; the Trainer
    inputs.py, pipeline.py, backends/  Frame -> network inputs; DepthEstimator, the one inference path
    devices.py, export.py, exported.py devices and precisions; ONNX / TorchScript export and its files
    serving.py, onnx_estimator.py      serving plans (made once per checkpoint, cached); torch-free ONNX serving
    conventions.py, filehash.py        a checkpoint's input conventions; file sha256
    metrics.py, evaluate.py, viz.py    the paper's protocol; evaluation loops; pictures
    cli.py, commands/, errors.py       the `xd-rcdepth` machinery, one module per subcommand

Nothing in this package imports rclpy, a ROS message package or ``xd_rcdepth_ros`` (a test checks).
"""
