"""shoal.kernel"""
