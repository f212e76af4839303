"""shoal.firewall"""
