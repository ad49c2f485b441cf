"""Pure autoscaling policies: metrics window in, replica count out.
"""
