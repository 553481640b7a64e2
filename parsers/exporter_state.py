"""What the decoder knows about each exporter besides templates: sequence streams,
sampling announced in options records, system init times, interface names, counters.

Options data records are metadata about the exporter, not flows; the ones that change
how flows read (sampling, systemInitTimeMilliseconds) are applied here, the rest are
kept (bounded) so an operator can see them.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from parsers.events import OptionsRecord
from parsers.sequence import SequenceTracker

#: options records kept per exporter for inspection (the newest win)
MAX_OPTIONS_RECORDS_PER_EXPORTER: Final = 256
#: interface names / samplers kept per exporter (an options table bigger than this is
#: a hostile or broken exporter)
MAX_METADATA_ENTRIES_PER_EXPORTER: Final = 65536

#: the sampling_interval column is uint32; a larger announced N is clamped to it
MAX_SAMPLING_INTERVAL: Final = 0xFFFFFFFF

StreamKey = tuple[int, int]  # (version, observation domain)


@dataclass(slots=True)
class ExporterState:
    """One transport session (address, source port) as the decoder sees it."""

    exporter: tuple[str, int]
    index: int
    ipv4: int | None  # the address as an integer when it is IPv4 (or v4-mapped IPv6)
    ipv6: bytes | None  # 16 bytes otherwise
    sequences: dict[tuple[int, int], SequenceTracker] = field(default_factory=dict)
    default_sampling: dict[StreamKey, int] = field(default_factory=dict)
    samplers: dict[tuple[int, int, int], int] = field(default_factory=dict)
    system_init_ns: dict[StreamKey, int] = field(default_factory=dict)
    interfaces: dict[tuple[int, int], dict[str, object]] = field(default_factory=dict)
    options: deque[OptionsRecord] = field(
        default_factory=lambda: deque(maxlen=MAX_OPTIONS_RECORDS_PER_EXPORTER)
    )
    datagrams: int = 0
    flow_records: int = 0
    options_records: int = 0
    sequence_lost: int = 0
    last_seen_ns: int = 0

    @classmethod
    def create(cls, exporter: tuple[str, int], index: int) -> ExporterState:
        try:
            address = ipaddress.ip_address(exporter[0].split("%", 1)[0])
        except ValueError:
            address = ipaddress.IPv4Address(0)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # dual-stack sockets report ::ffff:a.b.c.d
        if isinstance(address, ipaddress.IPv4Address):
            return cls(exporter, index, int(address), None)
        return cls(exporter, index, None, address.packed)

    def sequence(self, version: int, domain: int) -> SequenceTracker:
        tracker = self.sequences.get((version, domain))
        if tracker is None:
            tracker = self.sequences[(version, domain)] = SequenceTracker()
        return tracker

    def apply_options(self, record: OptionsRecord) -> None:
        """Take what an options record says about sampling, clocks and interfaces."""
        values = record.values
        stream = (record.version, record.observation_domain)
        interval = sampling_interval_of(values)
        if interval is not None and interval > 0:
            interval = min(interval, MAX_SAMPLING_INTERVAL)
            sampler = values.get("sampler_id")
            if isinstance(sampler, int):
                if len(self.samplers) < MAX_METADATA_ENTRIES_PER_EXPORTER:
                    self.samplers[(record.version, record.observation_domain, sampler)] = interval
            else:
                self.default_sampling[stream] = interval
        init_ns = values.get("system_init_time")
        if isinstance(init_ns, int) and init_ns > 0:
            self.system_init_ns[stream] = init_ns
        if_index = values.get("in_if", values.get("scope_interface"))
        if isinstance(if_index, int):
            names = {
                key: values[key]
                for key in ("interface_name", "interface_description")
                if key in values
            }
            if names and len(self.interfaces) < MAX_METADATA_ENTRIES_PER_EXPORTER:
                self.interfaces[(record.observation_domain, if_index)] = names
        self.options.append(record)
        self.options_records += 1


def sampling_interval_of(values: dict[str, object]) -> int | None:
    """The 1-in-N packet sampling an options record (or data record) announces.

    v9 SAMPLING_INTERVAL (34) / FLOW_SAMPLER_RANDOM_INTERVAL (50); IPFIX
    samplingPacketInterval/Space (305/306, RFC 5477): N = (interval + space) / interval;
    samplingSize/Population (309/310): N = population / size; samplingProbability
    (311): N = 1 / probability.
    """
    for key in ("sampling_interval", "sampler_random_interval"):
        value = values.get(key)
        if isinstance(value, int) and value > 0:
            return value
    interval = values.get("sampling_packet_interval")
    space = values.get("sampling_packet_space")
    if isinstance(interval, int) and interval > 0 and isinstance(space, int):
        return (interval + space) // interval
    # random n-out-of-N (RFC 5477 samplingSize / samplingPopulation; Cisco IOS XR)
    size = values.get("sampling_size")
    population = values.get("sampling_population")
    if isinstance(size, int) and size > 0 and isinstance(population, int) and population > 0:
        return max(population // size, 1)
    probability = values.get("sampling_probability")
    if isinstance(probability, float) and 0 < probability <= 1:
        if probability < 1 / MAX_SAMPLING_INTERVAL:
            return MAX_SAMPLING_INTERVAL
        return max(round(1 / probability), 1)
    return None
