"""EPCIS 2.0 on the database: capture, query, the lineage graph, lineage verification and bundles.

* :mod:`api.epcis.models` — tables ``epcis_events``, ``epcis_event_epcs``, ``lineage_edges``,
  ``epcis_objects`` (each event is also a signed, anchored :class:`api.models.Record`);
* :mod:`api.epcis.capture` — ``POST /v1/epcis/capture``: validate, GS1 event hash IDs, rows (§8.2);
* :mod:`api.epcis.query` — ``GET /v1/epcis/events``: SimpleEventQuery subset (§8.2.7.1);
* :mod:`api.epcis.graph` — identifier / EPC / Digital Link → node, breadth-first lineage walks;
* :mod:`api.epcis.lineage` — every record of an upstream lineage verified, first failure named;
* :mod:`api.epcis.bundle` — the self-contained offline provenance bundle.

The pure EPCIS rules (validation, event hash IDs, EPC canonical forms, lineage links) are in
:mod:`provenance.epcis`; the HTTP routes in :mod:`api.routes.epcis` and :mod:`api.routes.lineage`.
"""
