"""shoal.drivers"""
