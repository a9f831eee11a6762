"""
Stand-in HTTP servers for the outside services broseph talks to (OpenAI, FCM).
"""
