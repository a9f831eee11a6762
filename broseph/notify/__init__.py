"""
Push notifications: what DeliverGroupEvent (one job per group event,
broseph/jobs/deliver_group_event.py) and SendNotification (one user,
broseph/jobs/send_notification.py) are built from — quiet hours, the text of each notification
type, the per-device delivery bookkeeping (set-based: one statement for any number of
notifications), and the periodic prompt reminders.
"""
