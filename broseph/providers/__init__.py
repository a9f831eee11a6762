"""
Adapters to the outside world: AI prompt generation (OpenAI and the offline bank), push.
"""
