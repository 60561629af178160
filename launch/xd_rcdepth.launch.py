"""Launch the xd_rcdepth node (and optionally RViz). Wiring only: arguments, params file, remaps.

    ros2 launch xd_rcdepth_ros xd_rcdepth.launch.py checkpoint:=/path/model.pt \
        image:=/CAM_FRONT/image_raw camera_info:=/CAM_FRONT/camera_info radar:=/RADAR_FRONT
    # outputs on chosen topics too (each defaults to the node's private name, ~/output/...):
    ros2 launch xd_rcdepth_ros xd_rcdepth.launch.py checkpoint:=/path/model.pt \
        image:=/CAM_FRONT/image_raw camera_info:=/CAM_FRONT/camera_info radar:=/RADAR_FRONT \
        depth:=/perception/depth depth_camera_info:=/perception/depth/camera_info points:=/perception/points
    # a compressed camera stream:
    ros2 launch xd_rcdepth_ros xd_rcdepth.launch.py checkpoint:=/path/model.pt compressed_image:=true \
        image_compressed:=/CAM_FRONT/image_raw/compressed camera_info:=/CAM_FRONT/camera_info radar:=/RADAR_FRONT

The launch imports live inside the functions: `node_wiring` (what the node gets from the arguments) is
plain Python, so a test checks every argument's path to a parameter or remap without launch installed.
"""
import os

PACKAGE = 'xd_rcdepth_ros'
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')

# name -> (default, description). A test checks that each reaches the node (or RViz) as below.
ARGUMENTS = {
    'namespace': ('', 'Namespace of the node (topics become /<ns>/xd_rcdepth/...).'),
    'params_file': ('', 'Parameters YAML (empty: the package\'s config/xd_rcdepth.param.yaml).'),
    'checkpoint': ('', 'xd_rcdepth checkpoint to run (overrides the params file when set).'),
    'device': ('', 'auto | cpu | cuda | cuda:N (overrides the params file when set).'),
    'backend': ('', 'torch | onnxruntime (overrides the params file when set).'),
    'compressed_image': ('', 'true: subscribe the CompressedImage topic (image_compressed) instead of the raw '
                             'image (overrides the params file when set).'),
    'image': ('image', 'Camera image topic remapped to ~/input/image.'),
    'image_compressed': ('image/compressed', 'CompressedImage topic remapped to ~/input/image/compressed '
                                             '(used with compressed_image:=true).'),
    'camera_info': ('camera_info', 'CameraInfo topic remapped to ~/input/camera_info.'),
    'radar': ('radar_points', 'Radar PointCloud2 topic remapped to ~/input/radar_points.'),
    'depth': ('~/output/depth', 'Topic of the depth image (32FC1), remapped from ~/output/depth.'),
    'depth_camera_info': ('~/output/depth/camera_info', 'Topic of the depth\'s CameraInfo, remapped from '
                                                        '~/output/depth/camera_info.'),
    'depth_colored': ('~/output/depth_colored', 'Topic of the coloured depth (bgr8), remapped from '
                                                '~/output/depth_colored.'),
    'points': ('~/output/points', 'Topic of the depth point cloud (points.enabled), remapped from ~/output/points.'),
    'saliency_overlay': ('~/debug/saliency_overlay', 'Topic of the Grad-CAM overlay (bgr8), remapped from '
                                                     '~/debug/saliency_overlay.'),
    'use_sim_time': ('false', 'Use /clock (rosbag replay with --clock).'),
    'rviz': ('false', 'Also start RViz with the package\'s config/xd_rcdepth.rviz.'),
}
# Launch arguments that override the node parameter of the same name when non-empty.
PARAMETER_ARGUMENTS = ('checkpoint', 'device', 'backend', 'compressed_image', 'use_sim_time')
BOOLEAN_ARGUMENTS = ('compressed_image', 'use_sim_time', 'rviz')
# Launch argument -> the node's private topic it remaps: inputs (onto the private name) and outputs
# (from it; each defaults to the private name itself, which adds no remap: nothing changes by default).
INPUT_REMAP_ARGUMENTS = {'image': '~/input/image', 'image_compressed': '~/input/image/compressed',
                         'camera_info': '~/input/camera_info', 'radar': '~/input/radar_points'}
OUTPUT_REMAP_ARGUMENTS = {'depth': '~/output/depth', 'depth_camera_info': '~/output/depth/camera_info',
                          'depth_colored': '~/output/depth_colored', 'points': '~/output/points',
                          'saliency_overlay': '~/debug/saliency_overlay'}
REMAP_ARGUMENTS = {**INPUT_REMAP_ARGUMENTS, **OUTPUT_REMAP_ARGUMENTS}


def _true(text: str) -> bool:
    return str(text).strip().lower() in ('true', '1', 'yes', 'on')


def node_wiring(arg: dict, share: str) -> dict:
    """What the node gets from the launch arguments: namespace, parameters (file + overrides), remaps."""
    params_file = arg['params_file'] or os.path.join(share, 'config', 'xd_rcdepth.param.yaml')
    overrides = {name: _true(arg[name]) if name in BOOLEAN_ARGUMENTS else arg[name]
                 for name in PARAMETER_ARGUMENTS if arg[name]}
    return {'namespace': arg['namespace'], 'parameters': [params_file, overrides],
            'remappings': [(private, arg[name]) for name, private in REMAP_ARGUMENTS.items()
                           if arg[name] != private],
            'rviz': _true(arg['rviz']), 'use_sim_time': overrides.get('use_sim_time', False)}


def _setup(context):
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import LogInfo, SetEnvironmentVariable
    from launch_ros.actions import Node
    share = get_package_share_directory(PACKAGE)
    arg = {name: context.launch_configurations.get(name, default) for name, (default, _) in ARGUMENTS.items()}
    wiring = node_wiring(arg, share)
    actions = []
    # The shipped large-data Fast DDS profile, unless the user chose one (config/fastdds_large_data.xml).
    if not any(os.environ.get(v) for v in PROFILE_VARIABLES):
        profile = os.path.join(share, 'config', 'fastdds_large_data.xml')
        actions += [SetEnvironmentVariable(v, profile) for v in PROFILE_VARIABLES]
        actions.append(LogInfo(msg=f'Fast DDS profile: {profile}'))
    actions.append(Node(
        package=PACKAGE, executable='xd_rcdepth_node', name='xd_rcdepth', namespace=wiring['namespace'],
        output='screen', emulate_tty=True, parameters=wiring['parameters'], remappings=wiring['remappings']))
    if wiring['rviz']:
        actions.append(Node(package='rviz2', executable='rviz2', name='rviz2', output='screen',
                            arguments=['-d', os.path.join(share, 'config', 'xd_rcdepth.rviz')],
                            parameters=[{'use_sim_time': wiring['use_sim_time']}]))
    return actions


def generate_launch_description():
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchDescription
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc)
         for name, (default, desc) in ARGUMENTS.items()] + [OpaqueFunction(function=_setup)])
