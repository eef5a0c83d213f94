"""Device classes of the beamline that ophyd and ophyd-async do not have."""
