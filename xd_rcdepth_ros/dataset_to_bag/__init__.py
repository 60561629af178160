"""A dataset scene -> one rosbag2 (`xd-rcdepth to-bag`).

    sources.py    what a source yields: camera / point cloud / pose samples and the scene calibration
    synthetic.py, nuscenes.py   the synthetic world's and nuScenes' scenes as time-ordered samples
    scene.py      one scene -> one bag (camera, CameraInfo, radar, lidar, /tf_static, /tf, ego poses)
"""
