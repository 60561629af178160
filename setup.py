"""ament_python package `xd_rcdepth_ros`, installing both Python packages of the project.

xd_rcdepth_core: models, data, training, evaluation, the `xd-rcdepth` command (no ROS imports).
xd_rcdepth_ros:  the thin ROS 2 layer (message conversion, pairing, the node, bags).
"""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'xd_rcdepth_ros'


def share_files(folder):
    """(install dir, files) pairs for every file under `folder`, keeping sub-folders."""
    pairs = {}
    for path in glob(os.path.join(folder, '**', '*'), recursive=True):
        if os.path.isfile(path):
            dest = os.path.join('share', package_name, os.path.dirname(path))
            pairs.setdefault(dest, []).append(path)
    return sorted(pairs.items())


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(include=['xd_rcdepth_core', 'xd_rcdepth_core.*',
                                    'xd_rcdepth_ros', 'xd_rcdepth_ros.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ] + share_files('launch') + share_files('config') + share_files('models'),
    install_requires=['setuptools'],
    extras_require={
        # colcon reads this to run pytest (tests_require makes colcon silently run 0 tests).
        'test': ['pytest'],
    },
    python_requires='>=3.10',
    zip_safe=False,
    maintainer='xd_rcdepth developers',
    maintainer_email='xd-rcdepth@example.org',
    description='XD-RCDepth radar-camera depth estimation: models, distillation, training, '
                'evaluation and a ROS 2 perception node.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'xd-rcdepth = xd_rcdepth_ros.cli:main',
            'xd_rcdepth_node = xd_rcdepth_ros.node:main',
        ],
    },
)
