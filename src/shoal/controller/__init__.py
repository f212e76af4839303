"""shoal.controller"""
