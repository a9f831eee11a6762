"""
Push notifications: what SendNotification (broseph/jobs/send_notification.py) is built from —
quiet hours, the text of each notification type, the per-device delivery bookkeeping, and the
periodic prompt reminders.
"""
