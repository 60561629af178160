"""Launch the xd_rcdepth node (and optionally RViz). Wiring only: arguments, params file, remaps.

    ros2 launch xd_rcdepth_ros xd_rcdepth.launch.py checkpoint:=/path/model.pt \
        image:=/CAM_FRONT/image_raw camera_info:=/CAM_FRONT/camera_info radar:=/RADAR_FRONT
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable
from launch_ros.actions import Node

PACKAGE = 'xd_rcdepth_ros'
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')

# name -> (default, description). A test checks that each maps to a node parameter or to wiring.
ARGUMENTS = {
    'namespace': ('', 'Namespace of the node (topics become /<ns>/xd_rcdepth/...).'),
    'params_file': ('', 'Parameters YAML (empty: the package\'s config/xd_rcdepth.param.yaml).'),
    'checkpoint': ('', 'xd_rcdepth checkpoint to run (overrides the params file when set).'),
    'device': ('', 'auto | cpu | cuda | cuda:N (overrides the params file when set).'),
    'backend': ('', 'torch | onnxruntime (overrides the params file when set).'),
    'image': ('image', 'Camera image topic remapped to ~/input/image.'),
    'camera_info': ('camera_info', 'CameraInfo topic remapped to ~/input/camera_info.'),
    'radar': ('radar_points', 'Radar PointCloud2 topic remapped to ~/input/radar_points.'),
    'use_sim_time': ('false', 'Use /clock (rosbag replay with --clock).'),
    'rviz': ('false', 'Also start RViz with the package\'s config/xd_rcdepth.rviz.'),
}
# Launch arguments that override the node parameter of the same name when non-empty.
PARAMETER_ARGUMENTS = ('checkpoint', 'device', 'backend', 'use_sim_time')


def _setup(context):
    share = get_package_share_directory(PACKAGE)
    arg = {name: context.launch_configurations.get(name, default) for name, (default, _) in ARGUMENTS.items()}
    params_file = arg['params_file'] or os.path.join(share, 'config', 'xd_rcdepth.param.yaml')
    overrides = {name: arg[name] for name in PARAMETER_ARGUMENTS if arg[name]}
    if 'use_sim_time' in overrides:
        overrides['use_sim_time'] = overrides['use_sim_time'].lower() in ('true', '1', 'yes')
    actions = []
    # The shipped large-data Fast DDS profile, unless the user chose one (config/fastdds_large_data.xml).
    if not any(os.environ.get(v) for v in PROFILE_VARIABLES):
        profile = os.path.join(share, 'config', 'fastdds_large_data.xml')
        actions += [SetEnvironmentVariable(v, profile) for v in PROFILE_VARIABLES]
        actions.append(LogInfo(msg=f'Fast DDS profile: {profile}'))
    actions.append(Node(
        package=PACKAGE, executable='xd_rcdepth_node', name='xd_rcdepth', namespace=arg['namespace'],
        output='screen', emulate_tty=True, parameters=[params_file, overrides],
        remappings=[('~/input/image', arg['image']), ('~/input/camera_info', arg['camera_info']),
                    ('~/input/radar_points', arg['radar'])]))
    if arg['rviz'].lower() in ('true', '1', 'yes'):
        actions.append(Node(package='rviz2', executable='rviz2', name='rviz2', output='screen',
                            arguments=['-d', os.path.join(share, 'config', 'xd_rcdepth.rviz')],
                            parameters=[{'use_sim_time': overrides.get('use_sim_time', False)}]))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=desc)
         for name, (default, desc) in ARGUMENTS.items()] + [OpaqueFunction(function=_setup)])
