# Sourced: keep Channel Access and pvAccess on loopback unless the user has chosen the
# addresses (EPICS_CA_ADDR_LIST, EPICS_CAS_INTF_ADDR_LIST, the beacon lists...; for pvAccess
# EPICS_PVA_ADDR_LIST, EPICS_PVAS_INTF_ADDR_LIST...) already, each protocol on its own.
# Ports and other EPICS_* settings do not count: setting only EPICS_CA_SERVER_PORT stays on
# loopback.
if ! env | grep -qE '^EPICS_CAS?_(AUTO_)?(ADDR_LIST|INTF_ADDR_LIST|BEACON_ADDR_LIST|AUTO_BEACON_ADDR_LIST)='; then
    export EPICS_CA_AUTO_ADDR_LIST=NO EPICS_CA_ADDR_LIST=127.0.0.1
    export EPICS_CAS_INTF_ADDR_LIST=127.0.0.1
    export EPICS_CAS_AUTO_BEACON_ADDR_LIST=NO EPICS_CAS_BEACON_ADDR_LIST=127.0.0.1
fi
if ! env | grep -qE '^EPICS_PVAS?_(AUTO_)?(ADDR_LIST|INTF_ADDR_LIST|BEACON_ADDR_LIST)='; then
    export EPICS_PVA_AUTO_ADDR_LIST=NO EPICS_PVA_ADDR_LIST=127.0.0.1
    export EPICS_PVAS_INTF_ADDR_LIST=127.0.0.1
    export EPICS_PVAS_AUTO_BEACON_ADDR_LIST=NO EPICS_PVAS_BEACON_ADDR_LIST=127.0.0.1
fi
