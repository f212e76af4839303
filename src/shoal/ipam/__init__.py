"""shoal.ipam"""
