"""The thin ROS 2 layer of XD-RCDepth: message conversion, input pairing, the node, bags.

It imports xd_rcdepth_core; the core never imports this package.
"""
