"""The worker process: plans, devices and the RunEngine. bluesky, ophyd and ophyd-async
are imported only here; nothing here imports the IOC side.
"""
