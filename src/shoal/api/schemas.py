"""The Go types dockerd decodes request bodies into (moby v20.10 api/types, runconfig).

Declared here so that every body shoal reads is type-checked the way dockerd's decoder
would check it, field for field, before a handler looks inside (api.gotypes).
"""

from __future__ import annotations

from shoal.api.gotypes import (
    BOOL, EMPTY, INT, INT64, STRING, STRING_MAP, STRINGS, GoType, Map, Slice, Str, StrSlice, Struct,
    signed, unsigned,
)

STR_SLICE = StrSlice()
DURATION = signed(64, "time.Duration")
UINT64 = unsigned(64, "uint64")

PORT_BINDING = Struct("nat.PortBinding", {"HostIp": STRING, "HostPort": STRING})
PORT_SET = Map(EMPTY, "nat.PortSet")
PORT_MAP = Map(Slice(PORT_BINDING), "nat.PortMap")

HEALTH_CONFIG = Struct("container.HealthConfig", {
    "Test": STRINGS, "Interval": DURATION, "Timeout": DURATION, "StartPeriod": DURATION,
    "StartInterval": DURATION, "Retries": INT,
})

CONFIG_FIELDS: dict[str, GoType] = {
    "Hostname": STRING, "Domainname": STRING, "User": STRING,
    "AttachStdin": BOOL, "AttachStdout": BOOL, "AttachStderr": BOOL,
    "ExposedPorts": PORT_SET, "Tty": BOOL, "OpenStdin": BOOL, "StdinOnce": BOOL,
    "Env": STRINGS, "Cmd": STR_SLICE, "Healthcheck": HEALTH_CONFIG, "ArgsEscaped": BOOL,
    "Image": STRING, "Volumes": Map(EMPTY), "WorkingDir": STRING, "Entrypoint": STR_SLICE,
    "NetworkDisabled": BOOL, "MacAddress": STRING, "OnBuild": STRINGS, "Labels": STRING_MAP,
    "StopSignal": STRING, "StopTimeout": INT, "Shell": STR_SLICE,
}

THROTTLE = Slice(Struct("blkiodev.ThrottleDevice", {"Path": STRING, "Rate": UINT64}))

RESOURCES_FIELDS: dict[str, GoType] = {
    "CpuShares": INT64, "Memory": INT64, "NanoCpus": INT64, "CgroupParent": STRING,
    "BlkioWeight": unsigned(16, "uint16"),
    "BlkioWeightDevice": Slice(Struct("blkiodev.WeightDevice", {"Path": STRING, "Weight": unsigned(16, "uint16")})),
    "BlkioDeviceReadBps": THROTTLE, "BlkioDeviceWriteBps": THROTTLE,
    "BlkioDeviceReadIOps": THROTTLE, "BlkioDeviceWriteIOps": THROTTLE,
    "CpuPeriod": INT64, "CpuQuota": INT64, "CpuRealtimePeriod": INT64, "CpuRealtimeRuntime": INT64,
    "CpusetCpus": STRING, "CpusetMems": STRING,
    "Devices": Slice(Struct("container.DeviceMapping", {
        "PathOnHost": STRING, "PathInContainer": STRING, "CgroupPermissions": STRING})),
    "DeviceCgroupRules": STRINGS,
    "DeviceRequests": Slice(Struct("container.DeviceRequest", {
        "Driver": STRING, "Count": INT, "DeviceIDs": STRINGS,
        "Capabilities": Slice(STRINGS), "Options": STRING_MAP})),
    "KernelMemory": INT64, "KernelMemoryTCP": INT64, "MemoryReservation": INT64, "MemorySwap": INT64,
    "MemorySwappiness": INT64, "OomKillDisable": BOOL, "PidsLimit": INT64,
    "Ulimits": Slice(Struct("units.Ulimit", {"Name": STRING, "Hard": INT64, "Soft": INT64})),
    "CpuCount": INT64, "CpuPercent": INT64, "IOMaximumIOps": UINT64, "IOMaximumBandwidth": UINT64,
}

MOUNT = Struct("mount.Mount", {
    "Type": Str("mount.Type"), "Source": STRING, "Target": STRING, "ReadOnly": BOOL,
    "Consistency": Str("mount.Consistency"),
    "BindOptions": Struct("mount.BindOptions", {"Propagation": Str("mount.Propagation"), "NonRecursive": BOOL}),
    "VolumeOptions": Struct("mount.VolumeOptions", {
        "NoCopy": BOOL, "Labels": STRING_MAP,
        "DriverConfig": Struct("mount.Driver", {"Name": STRING, "Options": STRING_MAP})}),
    "TmpfsOptions": Struct("mount.TmpfsOptions", {"SizeBytes": INT64, "Mode": unsigned(32, "fs.FileMode")}),
})

HOST_CONFIG_FIELDS: dict[str, GoType] = {
    "Binds": STRINGS, "ContainerIDFile": STRING,
    "LogConfig": Struct("container.LogConfig", {"Type": STRING, "Config": STRING_MAP}),
    "NetworkMode": Str("container.NetworkMode"), "PortBindings": PORT_MAP,
    "RestartPolicy": Struct("container.RestartPolicy", {"Name": STRING, "MaximumRetryCount": INT}),
    "AutoRemove": BOOL, "VolumeDriver": STRING, "VolumesFrom": STRINGS,
    "CapAdd": STR_SLICE, "CapDrop": STR_SLICE, "CgroupnsMode": Str("container.CgroupnsMode"),
    "Dns": STRINGS, "DnsOptions": STRINGS, "DnsSearch": STRINGS, "ExtraHosts": STRINGS, "GroupAdd": STRINGS,
    "IpcMode": Str("container.IpcMode"), "Cgroup": Str("container.CgroupSpec"), "Links": STRINGS,
    "OomScoreAdj": INT, "PidMode": Str("container.PidMode"), "Privileged": BOOL, "PublishAllPorts": BOOL,
    "ReadonlyRootfs": BOOL, "SecurityOpt": STRINGS, "StorageOpt": STRING_MAP, "Tmpfs": STRING_MAP,
    "UTSMode": Str("container.UTSMode"), "UsernsMode": Str("container.UsernsMode"), "ShmSize": INT64,
    "Sysctls": STRING_MAP, "Runtime": STRING, "ConsoleSize": Slice(unsigned(64, "uint"), length=2),
    "Isolation": Str("container.Isolation"),
    **RESOURCES_FIELDS,
    "Mounts": Slice(MOUNT), "MaskedPaths": STRINGS, "ReadonlyPaths": STRINGS, "Init": BOOL,
}
HOST_CONFIG = Struct("container.HostConfig", HOST_CONFIG_FIELDS)

ENDPOINT_SETTINGS = Struct("network.EndpointSettings", {
    "IPAMConfig": Struct("network.EndpointIPAMConfig", {
        "IPv4Address": STRING, "IPv6Address": STRING, "LinkLocalIPs": STRINGS}),
    "Links": STRINGS, "Aliases": STRINGS, "NetworkID": STRING, "EndpointID": STRING, "Gateway": STRING,
    "IPAddress": STRING, "IPPrefixLen": INT, "IPv6Gateway": STRING, "GlobalIPv6Address": STRING,
    "GlobalIPv6PrefixLen": INT, "MacAddress": STRING, "DriverOpts": STRING_MAP,
    "GwPriority": INT, "DNSNames": STRINGS,
})

NETWORKING_CONFIG = Struct("network.NetworkingConfig", {"EndpointsConfig": Map(ENDPOINT_SETTINGS)})

# runconfig.ContainerConfigWrapper embeds *container.Config and, for old clients, a second
# *container.HostConfig whose fields are read from the top level too (moby v20.10).
CONTAINER_CREATE = Struct("runconfig.ContainerConfigWrapper", {
    **HOST_CONFIG_FIELDS, **CONFIG_FIELDS,
    "HostConfig": HOST_CONFIG, "Cpuset": STRING, "NetworkingConfig": NETWORKING_CONFIG,
})

NETWORK_CONNECT = Struct("types.NetworkConnect", {"Container": STRING, "EndpointConfig": ENDPOINT_SETTINGS})
NETWORK_DISCONNECT = Struct("types.NetworkDisconnect", {"Container": STRING, "Force": BOOL})

CONSOLE_SIZE = Slice(unsigned(64, "uint"), length=2)
EXEC_CONFIG = Struct("types.ExecConfig", {
    "User": STRING, "Privileged": BOOL, "Tty": BOOL, "ConsoleSize": CONSOLE_SIZE,
    "AttachStdin": BOOL, "AttachStderr": BOOL, "AttachStdout": BOOL, "Detach": BOOL,
    "DetachKeys": STRING, "Env": STRINGS, "WorkingDir": STRING, "Cmd": STRINGS,
})
EXEC_START = Struct("types.ExecStartCheck", {"Detach": BOOL, "Tty": BOOL, "ConsoleSize": CONSOLE_SIZE})

# "AuxAddress" is the Go field's own name, which some old clients send; shoal reads it too.
AUTH_CONFIG = Struct("types.AuthConfig", {
    "username": STRING, "password": STRING, "auth": STRING, "email": STRING, "serveraddress": STRING,
    "identitytoken": STRING, "registrytoken": STRING})
IPAM_CONFIG = Struct("network.IPAMConfig", {
    "Subnet": STRING, "IPRange": STRING, "Gateway": STRING, "AuxiliaryAddresses": STRING_MAP,
    "AuxAddress": STRING_MAP})
NETWORK_CREATE = Struct("types.NetworkCreateRequest", {
    "Name": STRING, "CheckDuplicate": BOOL, "Driver": STRING, "Scope": STRING,
    "EnableIPv4": BOOL, "EnableIPv6": BOOL,
    "IPAM": Struct("network.IPAM", {"Driver": STRING, "Options": STRING_MAP, "Config": Slice(IPAM_CONFIG)}),
    "Internal": BOOL, "Attachable": BOOL, "Ingress": BOOL, "ConfigOnly": BOOL,
    "ConfigFrom": Struct("network.ConfigReference", {"Network": STRING}),
    "Options": STRING_MAP, "Labels": STRING_MAP,
})

VOLUME_CREATE = Struct("volume.VolumeCreateBody", {
    "Driver": STRING, "DriverOpts": STRING_MAP, "Labels": STRING_MAP, "Name": STRING,
    "ClusterVolumeSpec": EMPTY,  # API 1.42's swarm CSI volumes: decoded, never used here
})
UPDATE_CONFIG = Struct("container.UpdateConfig", {
    **RESOURCES_FIELDS,
    "RestartPolicy": Struct("container.RestartPolicy", {"Name": STRING, "MaximumRetryCount": INT}),
})
