"""The `corral` command.
"""
