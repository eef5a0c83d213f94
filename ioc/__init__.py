"""An EPICS IOC that runs bluesky plans requested over Channel Access."""
