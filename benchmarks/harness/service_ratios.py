"""The service section's ratios (``service.json``'s ``ratios``): the service against the
floor (issue 20's targets), against the minimal FastAPI + ONNX Runtime service, and
against the floor with the two checks; each from the cells and floors of one run."""

from __future__ import annotations

from typing import Any

from benchmarks.harness.common import ratio


def minimal_ratios(
    cells: dict[str, Any], minimal: dict[str, Any], ref: dict[str, Any], kind: str
) -> dict[str, Any]:
    """The minimal service against the floor (what bare HTTP costs) and the product
    against the minimal service (what the product's features cost), 1 photo."""
    floor = ref["1photo"]
    c1, c16 = cells[f"{kind}/1photo/c1"], cells[f"{kind}/1photo/c16"]
    m1, m16 = minimal["c1"], minimal["c16"]
    return {
        "minimal_latency_over_floor": ratio(
            m1["request_ms"].get("p50"), floor["request_ms"].get("p50")
        ),
        "minimal_throughput_over_floor": ratio(
            m16["photos_per_s"], floor["throughput"]["photos_per_s"]
        ),
        "minimal_cpu_over_floor_c16": ratio(
            m16.get("server_cpu_ms_per_photo"), floor["throughput"].get("cpu_ms_per_photo")
        ),
        "service_latency_over_minimal": ratio(
            c1["request_ms"].get("p50"), m1["request_ms"].get("p50")
        ),
        "service_throughput_over_minimal": ratio(c16["photos_per_s"], m16["photos_per_s"]),
        "service_cpu_over_minimal_c16": ratio(
            c16.get("server_cpu_ms_per_photo"), m16.get("server_cpu_ms_per_photo")
        ),
    }


def checked_ratios(cells: dict[str, Any], ref: dict[str, Any], kind: str) -> dict[str, Any]:
    """The floor with the two checks against the floor (what the checks cost), and the
    service against it (what the service's plumbing costs over its decisive work)."""
    checked = ref["checked_1photo"]
    c1, c16 = cells[f"{kind}/1photo/c1"], cells[f"{kind}/1photo/c16"]
    p50 = checked["request_ms"].get("p50")
    return {
        "checked_floor_latency_over_floor": ratio(p50, ref["1photo"]["request_ms"].get("p50")),
        "service_latency_over_checked_floor": ratio(c1["request_ms"].get("p50"), p50),
        "service_throughput_over_checked_floor": ratio(
            c16["photos_per_s"], checked["throughput"]["photos_per_s"]
        ),
        "service_cpu_over_checked_floor_c16": ratio(
            c16.get("server_cpu_ms_per_photo"), checked["throughput"].get("cpu_ms_per_photo")
        ),
    }


def ratios(cells: dict[str, Any], ref: dict[str, Any], kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in (1, 4):
        svc_c1 = cells[f"{kind}/{n}photo/c1"]["request_ms"].get("p50")
        svc_c16 = cells[f"{kind}/{n}photo/c16"]["photos_per_s"]
        floor = ref[f"{n}photo"]
        out[f"latency_ratio_{n}photo"] = ratio(svc_c1, floor["request_ms"].get("p50"))
        out[f"throughput_ratio_{n}photo"] = ratio(svc_c16, floor["throughput"]["photos_per_s"])
        out[f"cpu_per_photo_ratio_{n}photo_c16"] = ratio(
            cells[f"{kind}/{n}photo/c16"].get("server_cpu_ms_per_photo"),
            floor["throughput"].get("cpu_ms_per_photo"),
        )
    naive = ref.get("naive_1photo")
    if naive:
        svc = cells[f"{kind}/1photo/c1"]["request_ms"].get("p50")
        out["naive_over_service"] = ratio(naive["per_photo_ms"].get("p50"), svc)
        out["naive_over_floor"] = ratio(
            naive["per_photo_ms"].get("p50"), ref["1photo"]["request_ms"].get("p50")
        )
    return out
