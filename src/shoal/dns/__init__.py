"""shoal.dns"""
