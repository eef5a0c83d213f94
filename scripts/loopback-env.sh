# Sourced: keep Channel Access on loopback unless the user set EPICS_CA_*/EPICS_CAS_* already.
if ! env | grep -qE '^EPICS_CAS?_'; then
    export EPICS_CA_AUTO_ADDR_LIST=NO EPICS_CA_ADDR_LIST=127.0.0.1
    export EPICS_CAS_INTF_ADDR_LIST=127.0.0.1
    export EPICS_CAS_AUTO_BEACON_ADDR_LIST=NO EPICS_CAS_BEACON_ADDR_LIST=127.0.0.1
fi
