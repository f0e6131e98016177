"""Graphs, runs, logs and WebSocket connections in one DynamoDB table.

:class:`DynamoStore` implements the ``GraphStore``, ``RunStore`` and
``ConnectionStore`` ports with the semantics of :mod:`engine.memory`.

Keys (table ``pk`` S hash, ``sk`` S range, TTL attribute ``expires_at``, no indexes):

============================  ==========================  =============================================
pk                            sk                          holds
============================  ==========================  =============================================
``GRAPH#{graph_id}``          ``V#{version:08d}``         one graph version (``definition`` as JSON)
``GRAPHS#{owner}``            ``G#{graph_id}``            the latest version of each of an owner's graphs
``RUN#{run_id}``              ``RUN``                     the run: position, status, subscribers, state manifest
``RUN#{run_id}``              ``VAL#{digest}``            one state value (see :mod:`.state`)
``RUN#{run_id}``              ``LOG#{first:010d}#{tok}``  one commit's log records (see :mod:`.runlog`)
``IDEM#{owner}#{key}``        ``IDEM``                    the run an owner started with an idempotency key
``RUNS#{owner}``              ``R#{created_at}#{run_id}`` an owner's run, for listing (``graph_id``)
``CONN#{connection_id}``      ``RUN#{run_id}``            a run a WebSocket connection follows
============================  ==========================  =============================================

Access patterns and their requests:

* put_graph: ``PutItem`` of the version (``attribute_not_exists`` or ConflictError),
  then ``PutItem`` of the index entry, conditional on holding an older version
  (a crash in between leaves the listing a version behind until the next put).
  get_graph: ``GetItem``; the latest: ``Query`` of the graph's partition, newest
  first, limit 1. list_graphs: ``Query`` of the owner's ``GRAPHS#{owner}``.

Owners. Graph versions and runs carry an ``owner`` attribute (the caller's
principal). Items written before owners existed have none: they are listed
under the old ``GRAPHS`` and ``IDEM#{key}`` keys, which no owner reads.
* create_run: without an idempotency key, ``PutItem`` of the log item then of the
  run (``attribute_not_exists``); with one, one ``TransactWriteItems`` of the
  idempotency item, the run and its log item; if the key is taken, the run that
  holds it is returned. The idempotency item expires no later than its run; an
  expired one is taken over.
* list_runs: ``Query`` of ``RUNS#{owner}`` newest first (``graph_id`` filtered in the
  query), then ``BatchGetItem`` of the run items (their status), a page at a time
  until ``limit`` runs of the status asked for are found. create_run writes the
  listing item (in its transaction, or with one more ``PutItem``: 1 WRU a run);
  delete_run deletes it.
* get_run: ``GetItem`` of the run item, strongly consistent; no value. Its state
  is a :class:`~engine.lazystate.LazyState`: reading a key that is not inline
  fetches it then (``BatchGetItem`` of value items, ``GetObject`` of a blob), and
  reading them all fetches every missing one in one ``BatchGetItem`` (per 100).
* commit (one step): a ``PutItem`` per changed value that is neither inline nor
  already stored (content-addressed, :mod:`engine.aws.state`), a ``PutObject``
  per new large value, ``PutItem`` of the log item, then one ``UpdateItem`` of
  the run conditional on ``step``, ``attempt``, a non-terminal ``status`` and
  the ``log_token`` of the run as read (its revision), setting only the changed manifest entries and
  returning ``ALL_OLD`` (the small item before the update: its subscribers are
  those at the commit, which does not change them). A failed condition is
  :class:`StaleStepError`; the log item and values stay invisible: readers only
  trust items of committed attempts, which the per-attempt token in the sort key
  tells apart (:mod:`engine.aws.runlog` explains why one key per ``first_seq`` is
  not enough), and only the committed manifest names values. With the
  ``GetItem`` that read the run, a step that changes only small values costs
  three requests. A commit changing more than ``MAX_KEYS_PER_UPDATE`` state keys
  (update expressions are limited to 4 KB) writes the whole manifest.
* list_logs: ``GetItem`` (``next_seq``, ``log_token``), then ``Query`` of the log
  items from shortly before ``after`` up to ``next_seq``.
* add/remove_subscriber: ``UpdateItem`` ``ADD``/``DELETE`` on the ``subs`` string set.
* connections: ``PutItem`` (TTL a few hours), ``Query``, ``BatchWriteItem`` deletes.
* delete_graph: ``Query`` of the graph's partition, ``BatchWriteItem`` deletes of
  its versions, then ``DeleteItem`` of the listing entry.
* delete_run: ``GetItem``, ``DeleteItem`` of the run conditional on a terminal
  ``status``, then ``Query`` and ``BatchWriteItem`` deletes of its log items, then
  ``DeleteItem`` of its idempotency item if it still names the run. A crash after
  the run's delete leaves log items nobody can read until their TTL removes them.
  State blobs are content-addressed and may be shared by runs: they stay.

State. The run item's ``state`` map is a manifest: per top-level key, the value
itself if it is small, else a short reference to a value item or an S3 blob
(:mod:`engine.aws.state` has the layout and why it holds under crashes and
duplicate deliveries). The run item stays at a few hundred bytes plus the
references (about 60 bytes a key), whatever the state's size; more than
``state_budget`` of manifest is :class:`PayloadTooLargeError`.

Revisions. A run read from the store carries :attr:`~engine.model.Run.revision`:
its log token, ``values_until`` and the manifests of its state and of its
fan-out's updates, as read. :meth:`DynamoStore.commit` takes that run and needs
no other read (and the store keeps no memory of earlier reads); its condition
is the log token read, which every commit changes, so "nothing was committed
since this read" is one comparison, and the position, status and every other
field of the read still hold when it passes.

Billing (on-demand: a write unit per KB of the larger of the item's sizes before
and after, a transaction twice; a strongly consistent read unit per 4 KB of the
whole item, whatever the projection, half that eventually consistent; a Query
on the sum of the items it reads). ``R`` is the run item (about 1 KB for ten
keys), ``L`` a log item (one step's three records: under 1 KB), ``V`` a value
item's stored (compressed) size.

=============================  ======================================  ==============================
access pattern                 requests                                units
=============================  ======================================  ==============================
step: read the run             ``GetItem``                             ``ceil(R/4)`` RRU
step: tool reads a value item  ``BatchGetItem`` (once per process:     ``ceil(V/4)/2`` RRU
                               contents are cached by digest)
step: tool reads a blob        S3 ``GetObject`` (cached likewise)      one GET
step: changed value            ``PutItem`` of its item, or S3          ``ceil(V)`` WRU, or one PUT;
                               ``PutObject`` if over ``inline_limit``  nothing if inline
step: log                      ``PutItem``                             ``ceil(L)`` WRU
step: commit                   ``UpdateItem`` (``ALL_OLD``)            ``ceil(R)`` WRU
renewal (once per ``ttl``)     ``BatchGetItem`` + ``PutItem`` a value  ``V`` RRU/2 + ``V`` WRU each
get_run without state          ``GetItem``                             ``ceil(R/4)`` RRU
``GET /runs/{id}/state/{k}``   ``GetItem`` + that value's read         as above
list_logs                      ``GetItem`` + ``Query``                 ``ceil(R/4)`` + ``ceil(sum L/4)``
create_run                     value puts + log ``PutItem`` + run      as a step; with an idempotency
                               ``PutItem`` (or one transaction)        key the transaction is 2x
=============================  ======================================  ==============================

So a step that changes one small key costs ``ceil(R/4) + ceil(L) + ceil(R)``:
1 RRU and 2 WRU while the run item is under 1 KB, whatever the state's size
(``bench/state.py`` measures it through the step handler).

TTL: log items expire ``ttl_days`` after they are written, runs ``ttl_days`` after
they finish, idempotency items ``ttl_days`` after the run started.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from engine.aws.attributes import (
    Item,
    Update,
    error_code,
    integer,
    is_condition_failure,
    n,
    number,
    s,
    text,
)
from engine.aws.connections import ConnectionTable
from engine.aws.graphs import GraphTable
from engine.aws.runlog import (
    RECORDS_PER_ITEM,
    LogItem,
    check_sequence,
    committed_records,
    log_items,
    log_key,
    new_token,
    page_items,
)
from engine.aws.state import VALUE_TTL_FACTOR, StateValues, parse_entry
from engine.blobs import DEFAULT_CACHE_BYTES, DEFAULT_INLINE_LIMIT, BlobStore, ValueCodec, size_of
from engine.errors import (
    ConflictError,
    PayloadTooLargeError,
    RunActiveError,
    RunNotFoundError,
    StaleStepError,
    TooManySubscribersError,
)
from engine.lazystate import LazyState
from engine.model import (
    DEFAULT_MAX_SUBSCRIBERS_PER_RUN,
    DeliveryNote,
    FanOut,
    LogRecord,
    Run,
    RunChanges,
    RunError,
    RunStatus,
    Waiting,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DAY = 86_400
STATE_BUDGET = 64 * 1024
"""The most the run item's ``state`` manifest may hold (inline values and references)."""
MAX_KEYS_PER_UPDATE = 100
_PAGE_ITEMS = 1000
_ACTIVE = (RunStatus.PENDING.value, RunStatus.RUNNING.value)
_REOPENABLE = (RunStatus.FAILED.value, RunStatus.TIMED_OUT.value)


def _idem_key(owner: str | None, key: str) -> Item:
    return {"pk": s(f"IDEM#{owner}#{key}" if owner is not None else f"IDEM#{key}"), "sk": s("IDEM")}


def _run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def _run_key(run_id: str) -> Item:
    return {"pk": s(_run_pk(run_id)), "sk": s("RUN")}


def _listing_key(owner: str, created_at: float, run_id: str) -> Item:
    return {"pk": s(f"RUNS#{owner}"), "sk": s(f"R#{created_at:020.6f}#{run_id}")}


def _state_key(key: str) -> str:
    """The map key for a state key: an attribute name cannot be empty, so ``""`` and ``~...`` gain a ``~``."""
    return "~" + key if not key or key.startswith("~") else key


def _state_name(stored: str) -> str:
    return stored[1:] if stored.startswith("~") else stored


def _entry_size(key: str, value: str) -> int:
    return size_of(key) + size_of(value)


def _revision(item: Item) -> str:
    """What a commit from this read of the run needs: its log token, ``values_until`` and manifests."""
    return json.dumps(
        {
            "t": text(item, "log_token"),
            "u": int(number(item, "values_until") or 0) or None,
            "m": {k: v["S"] for k, v in item["state"]["M"].items()},
            "f": _fanout_parts(item)[1],
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def _fanout_parts(item: Item) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The run item's fan-out without its updates, and the entries of its branches' updates."""
    raw = text(item, "fo")
    if raw is None:
        return None, {}
    data = json.loads(raw)
    return data["fanout"], data["entries"]


class DynamoStore(GraphTable, ConnectionTable):
    """Graph, run and connection store on one DynamoDB table (see the module docstring).

    Graphs are in :mod:`.graphs`, connections in :mod:`.connections`, the
    shared requests in :mod:`.table`, state values in :mod:`.state` and the
    log's items in :mod:`.runlog`; runs are here.

    Args:
        client: a boto3 low-level DynamoDB client.
        table_name: the table, keyed ``pk``/``sk``, with TTL on ``expires_at``.
        blobs: where large state values go; without it each value must fit in an item.
        ttl_days: how long finished runs, their logs and idempotency keys are kept.
        inline_limit: the largest JSON text of one state value kept in DynamoDB (larger ones go to ``blobs``).
        state_budget: the most state manifest (inline values and references) a run item holds.
        blob_cache_bytes: how much blob content, and as much value item text, to keep in memory.
        max_subscribers: how many WebSocket connections one run takes.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        blobs: BlobStore | None = None,
        ttl_days: float = 30,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
        state_budget: int = STATE_BUDGET,
        blob_cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS_PER_RUN,
    ) -> None:
        super().__init__(client, table_name)
        self.max_subscribers = max_subscribers
        self.codec = ValueCodec(blobs, inline_limit=inline_limit, cache_bytes=blob_cache_bytes)
        self.ttl_seconds = int(ttl_days * DAY)
        self.state_budget = state_budget
        self.values = StateValues(client, table_name, self.codec, self.ttl_seconds, blob_cache_bytes)

    # runs

    def create_run(self, run: Run, records: list[LogRecord]) -> Run:
        if records:
            check_sequence(records, run.next_seq - len(records))
        now = int(time.time())
        entries = self.values.place(
            _run_pk(run.run_id), {_state_key(k): v for k, v in run.state.items()}, {}, now
        )
        self._check_manifest(entries)
        token = new_token() if records else None
        item = self._run_item(run, entries, token, now)
        logs = log_items(_run_pk(run.run_id), records, token, None, now + self.ttl_seconds) if token else []
        if run.owner is not None:
            logs = [
                *logs,
                {**_listing_key(run.owner, run.created_at, run.run_id), "graph_id": s(run.graph_id)},
            ]
        if run.idempotency_key:
            existing = self._create_idempotent(run, run.idempotency_key, item, logs, now)
            if existing is not None:
                return existing
        else:
            for log in logs:
                self._put(log)
            try:
                self.client.put_item(
                    TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
                )
            except ClientError as exc:
                if is_condition_failure(exc):
                    raise ConflictError(f"run {run.run_id} exists") from None
                raise self._translated(exc) from exc
        return self._run(item, loaded=dict(run.state))

    def _create_idempotent(self, run: Run, key: str, item: Item, logs: list[Item], now: int) -> Run | None:
        """Write the run with its idempotency item in one transaction.

        Returns the run that already holds the key (nothing is written then), or
        ``None`` once this run is stored.
        """
        idem = {
            **_idem_key(run.owner, key),
            "run_id": s(run.run_id),
            "expires_at": n(now + self.ttl_seconds),
        }
        actions: list[Any] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": idem,
                    "ConditionExpression": "attribute_not_exists(pk) OR #expires < :now",
                    "ExpressionAttributeNames": {"#expires": "expires_at"},
                    "ExpressionAttributeValues": {":now": n(now)},
                }
            },
            {
                "Put": {
                    "TableName": self.table,
                    "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            *({"Put": {"TableName": self.table, "Item": log}} for log in logs),
        ]
        try:
            self.client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise self._translated(exc) from exc
            reasons = cast(dict[str, Any], exc.response).get("CancellationReasons", [])
            codes = [r.get("Code") for r in reasons]
            if codes and codes[0] == "ConditionalCheckFailed":
                existing = self.find_run_by_idempotency_key(run.owner, key)
                if existing is not None:
                    return existing
                raise ConflictError(f"idempotency key {key!r} is taken") from None
            if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                raise ConflictError(f"run {run.run_id} exists") from None
            if any(c == "ValidationException" for c in codes):
                raise PayloadTooLargeError(f"run {run.run_id} does not fit in a DynamoDB item") from None
            raise
        return None

    def find_run_by_idempotency_key(self, owner: str | None, key: str) -> Run | None:
        item = self._get(_idem_key(owner, key))
        if item is None or (number(item, "expires_at") or 0) < time.time():
            return None
        try:
            return self.get_run(item["run_id"]["S"])
        except RunNotFoundError:
            return None

    def get_run(self, run_id: str) -> Run:
        item = self._get(_run_key(run_id))
        if item is None:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
        return self._run(item)

    def list_runs(
        self, owner: str, *, limit: int = 50, status: str | None = None, graph_id: str | None = None
    ) -> list[Run]:
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :r)",
            "ExpressionAttributeValues": {":pk": s(f"RUNS#{owner}"), ":r": s("R#")},
            "ScanIndexForward": False,
            "Limit": max(limit, 1) if status is None else 100,
        }
        if graph_id is not None:
            params["FilterExpression"] = "graph_id = :g"
            params["ExpressionAttributeValues"][":g"] = s(graph_id)
        found: list[Run] = []
        while len(found) < limit:
            out = self.client.query(**params)
            ids = [str(i["sk"]["S"]).rsplit("#", 1)[1] for i in cast(list[Item], out.get("Items", []))]
            runs = {run.run_id: run for run in self._runs_by_id(ids)}
            found.extend(runs[i] for i in ids if i in runs and (status is None or runs[i].status == status))
            if "LastEvaluatedKey" not in out:
                break
            params["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        return found[:limit]

    def _runs_by_id(self, run_ids: list[str]) -> list[Run]:
        """The run items of ``run_ids`` that exist (``BatchGetItem``, 100 at a time)."""
        out: list[Run] = []
        for start in range(0, len(run_ids), 100):
            keys = [_run_key(i) for i in dict.fromkeys(run_ids[start : start + 100])]
            while keys:
                reply = cast(
                    dict[str, Any],
                    self.client.batch_get_item(
                        RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}}
                    ),
                )
                out.extend(self._run(item) for item in reply["Responses"].get(self.table, []))
                unprocessed: dict[str, Any] = reply.get("UnprocessedKeys") or {}
                keys = list(unprocessed.get(self.table, {}).get("Keys", []))
        return out

    def get_run_owner(self, run_id: str) -> str | None:
        item = self._get(_run_key(run_id), ("pk", "owner"))
        if item is None:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
        return text(item, "owner")

    def commit(self, run: Run, changes: RunChanges, records: list[LogRecord]) -> Run:
        """Write the changed values and the records' log item, then update the run if nothing committed since ``run`` was read.

        ``run.revision`` carries what the read saw: the log token (the commit's
        condition), ``values_until`` and the manifests of the state and of the
        fan-out's updates. Values and log items are written first, under keys no
        committed item points to yet (see :mod:`engine.aws.state` and
        :mod:`engine.aws.runlog`). The update returns the run item as it was
        (``ALL_OLD``: a few hundred bytes, whose subscribers the commit does not
        change); the run returned is that item with the changes applied, its
        state a :class:`LazyState` that holds the changed values.
        """
        run_id = run.run_id
        if run.revision is None:
            raise StaleStepError(f"run {run_id} was not read from this store", run_id=run_id)
        read = json.loads(run.revision)
        log_token: str | None = read["t"]
        read_entries: dict[str, str] = read["m"]
        check_sequence(records, run.next_seq)
        now = int(time.time())
        pk = _run_pk(run_id)
        updates = {_state_key(k): v for k, v in changes.state_updates.items()}
        unchanged = {k: v for k, v in read_entries.items() if k not in updates}
        entries = self.values.place(pk, updates, unchanged, now)
        values_until = self.values.renew(pk, unchanged, read["u"], now)
        entries.update(self.values.move_out(pk, unchanged, sum(map(size_of, entries.values())), now))
        manifest = {**read_entries, **entries}
        self._check_manifest(manifest)
        fanout = self._fanout_attribute(pk, changes, read, now)
        token = log_token
        if records:
            token = new_token()
            expires = now + self.ttl_seconds
            for log in log_items(pk, records, token, log_token, expires):
                self._put(log)

        fields: dict[str, Any] = {
            "status": s(changes.status.value),
            "node": s(changes.current_node) if changes.current_node is not None else None,
            "step": n(changes.step),
            "attempt": n(changes.attempt),
            "next_seq": n(changes.next_seq),
            "updated_at": n(changes.updated_at),
            "not_before": n(changes.not_before) if changes.not_before is not None else None,
            "error": s(changes.error.model_dump_json()) if changes.error else None,
            "finished_at": n(changes.finished_at) if changes.finished_at is not None else None,
            "fo": s(fanout) if fanout is not None else None,
            "wt": s(changes.waiting.model_dump_json()) if changes.waiting is not None else None,
        }
        if changes.callbacks is not None:
            fields["cbs"] = (
                s(json.dumps(changes.callbacks, separators=(",", ":"))) if changes.callbacks else None
            )
        if changes.reopens:
            fields["expires_at"] = None
        if changes.redriven_at is not None:
            fields["rdv"] = n(changes.redriven_at)
        if changes.status.terminal:
            fields["expires_at"] = n(now + self.ttl_seconds)
        if token is not None:
            fields["log_token"] = s(token)
        if values_until is not None:
            fields["values_until"] = n(values_until)
        if changes.state_bytes is not None:
            fields["state_bytes"] = n(changes.state_bytes)
        update = Update()
        for name, value in fields.items():
            update.set_or_remove(name, value)
        if len(entries) > MAX_KEYS_PER_UPDATE:
            update.set("state", {"M": {k: s(v) for k, v in manifest.items()}})
        else:
            for key, value in entries.items():
                update.set(key, s(value), within="state")
        condition = self._read_condition(update, run.position, log_token, reopen=changes.reopens)
        try:
            out = self.client.update_item(
                TableName=self.table,
                Key=_run_key(run_id),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **update.params(condition),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                if "Item" not in exc.response:
                    raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id) from None
                raise StaleStepError(
                    f"run {run_id} changed since it was read at {run.position}", run_id=run_id
                ) from None
            raise self._translated(exc) from exc
        item: Item = {k: v for k, v in cast(Item, out["Attributes"]).items() if k not in fields}
        item.update({k: v for k, v in fields.items() if v is not None})
        item["state"] = {"M": {k: s(v) for k, v in manifest.items()}}
        fanout_loaded = (
            {k: changes.fanout.updates[k] for k in changes.fanout_written}
            if changes.fanout is not None
            else {}
        )
        return self._run(item, loaded=changes.state_updates, fanout_loaded=fanout_loaded)

    def _fanout_attribute(self, pk: str, changes: RunChanges, read: dict[str, Any], now: int) -> str | None:
        """The ``fo`` attribute after ``changes``: the fan-out, its written branches' updates placed as values."""
        fanout = changes.fanout
        if fanout is None:
            return None
        kept: dict[str, str] = read["f"]
        written = {
            k: fanout.updates[k] for k in fanout.updates if k in changes.fanout_written or k not in kept
        }
        unchanged = {k: v for k, v in kept.items() if k in fanout.updates and k not in written}
        entries = {**unchanged, **self.values.place(pk, written, unchanged, now)}
        body = fanout.model_dump(mode="json", exclude={"updates"})
        return json.dumps({"fanout": body, "entries": entries}, separators=(",", ":"))

    def note_delivery(self, run_id: str, note: DeliveryNote) -> bool:
        """One conditional ``UpdateItem`` of the run's ``delivery`` attribute, at the note's position."""
        update = Update()
        update.set("delivery", s(note.model_dump_json()))
        step, attempt, status = update.name("step"), update.name("attempt"), update.name("status")
        pending, running = (update.value(s(v)) for v in _ACTIVE)
        condition = (
            f"{step} = {update.value(n(note.step))} AND {attempt} = {update.value(n(note.attempt))}"
            f" AND {status} IN ({pending}, {running})"
        )
        try:
            self.client.update_item(TableName=self.table, Key=_run_key(run_id), **update.params(condition))
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise self._translated(exc) from exc
        return True

    def list_logs(self, run_id: str, after: int = -1, limit: int = 1000) -> list[LogRecord]:
        head = self._get(_run_key(run_id), ("next_seq", "log_token"))
        if head is None:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
        next_seq = integer(head, "next_seq")
        log_token = text(head, "log_token")
        start = max(after + 1, 0)
        if limit <= 0 or start >= next_seq:
            return []
        stop = min(next_seq, start + limit)
        first = max(0, start - RECORDS_PER_ITEM + 1)
        items: list[LogItem] = []
        found: list[str] = []
        params: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {
                ":pk": s(_run_pk(run_id)),
                ":lo": s(log_key(first)),
                ":hi": s(log_key(next_seq)),
            },
            "ConsistentRead": True,
        }
        while len(found) < stop - start:
            skipped = 0 if items else start - first
            params["Limit"] = page_items(stop - start - len(found), items, _PAGE_ITEMS, skipped)
            out = self.client.query(**params)
            items.extend(LogItem.from_item(item) for item in cast(list[Item], out.get("Items", [])))
            found = committed_records(items, log_token, start, stop)
            if "LastEvaluatedKey" not in out:
                break
            params["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        return [LogRecord.model_validate_json(body) for body in found]

    def add_subscriber(self, run_id: str, connection_id: str) -> Run:
        """Add the connection to the run's ``subs`` set, in one conditional update that holds the cap.

        A connection already subscribed is accepted at the cap (re-subscribing is idempotent).
        """
        update = Update()
        update.add("subs", {"SS": [connection_id]})
        subs = update.name("subs")
        condition = (
            f"attribute_exists(pk) AND (attribute_not_exists({subs})"
            f" OR size({subs}) < {update.value(n(self.max_subscribers))}"
            f" OR contains({subs}, {update.value(s(connection_id))}))"
        )
        try:
            out = self.client.update_item(
                TableName=self.table,
                Key=_run_key(run_id),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **update.params(condition),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                if "Item" not in exc.response:
                    raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id) from None
                raise TooManySubscribersError(
                    f"run {run_id} already has {self.max_subscribers} subscribers",
                    run_id=run_id,
                    limit=self.max_subscribers,
                ) from None
            raise
        return self._run(out["Attributes"])

    def remove_subscriber(self, run_id: str, connection_id: str) -> None:
        update = Update()
        update.delete("subs", {"SS": [connection_id]})
        try:
            self.client.update_item(
                TableName=self.table, Key=_run_key(run_id), **update.params("attribute_exists(pk)")
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def delete_run(self, run_id: str) -> None:
        item = self._get(_run_key(run_id), ("pk", "idem_key", "owner", "created_at"))
        if item is None:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=_run_key(run_id),
                ConditionExpression="attribute_exists(pk) AND NOT (#status IN (:pending, :running))",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":pending": s(_ACTIVE[0]), ":running": s(_ACTIVE[1])},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            if self._get(_run_key(run_id), ("pk",)) is None:
                raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id) from None
            raise RunActiveError(f"run {run_id} has not ended; cancel it first", run_id=run_id) from None
        self._delete_all(
            {"pk": log["pk"], "sk": log["sk"]}
            for log in self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": s(_run_pk(run_id))},
                ProjectionExpression="pk, sk",
                ConsistentRead=True,
            )
        )
        run_owner = text(item, "owner")
        if run_owner is not None:
            self.client.delete_item(
                TableName=self.table, Key=_listing_key(run_owner, float(item["created_at"]["N"]), run_id)
            )
        key = text(item, "idem_key")
        if key:
            try:
                self.client.delete_item(
                    TableName=self.table,
                    Key=_idem_key(text(item, "owner"), key),
                    ConditionExpression="run_id = :run",
                    ExpressionAttributeValues={":run": s(run_id)},
                )
            except ClientError as exc:
                if not is_condition_failure(exc):
                    raise

    # run items

    def _run_item(self, run: Run, entries: dict[str, str], token: str | None, now: int) -> Item:
        item: Item = {
            **_run_key(run.run_id),
            "graph_id": s(run.graph_id),
            "graph_version": n(run.graph_version),
            "status": s(run.status.value),
            "step": n(run.step),
            "attempt": n(run.attempt),
            "next_seq": n(run.next_seq),
            "created_at": n(run.created_at),
            "updated_at": n(run.updated_at),
            "state": {"M": {k: s(v) for k, v in entries.items()}},
        }
        optional: dict[str, Any] = {
            "node": s(run.current_node) if run.current_node is not None else None,
            "not_before": n(run.not_before) if run.not_before is not None else None,
            "error": s(run.error.model_dump_json()) if run.error else None,
            "finished_at": n(run.finished_at) if run.finished_at is not None else None,
            "state_bytes": n(run.state_bytes) if run.state_bytes is not None else None,
            "idem_key": s(run.idempotency_key) if run.idempotency_key else None,
            "owner": s(run.owner) if run.owner is not None else None,
            "subs": {"SS": list(dict.fromkeys(run.subscribers))} if run.subscribers else None,
            "log_token": s(token) if token else None,
            "expires_at": n(now + self.ttl_seconds) if run.status.terminal else None,
            "values_until": n(now + VALUE_TTL_FACTOR * self.ttl_seconds),
            "wt": s(run.waiting.model_dump_json()) if run.waiting is not None else None,
            "cbs": s(json.dumps(run.callbacks, separators=(",", ":"))) if run.callbacks else None,
        }
        item.update({k: v for k, v in optional.items() if v is not None})
        return item

    def _run(
        self, item: Item, loaded: dict[str, Any] | None = None, fanout_loaded: dict[str, Any] | None = None
    ) -> Run:
        """The run an item holds; its state and fan-out updates load values when read (``loaded`` are at hand)."""
        error = text(item, "error")
        delivery = text(item, "delivery")
        run = Run(
            run_id=item["pk"]["S"][len("RUN#") :],
            graph_id=item["graph_id"]["S"],
            graph_version=integer(item, "graph_version"),
            status=RunStatus(item["status"]["S"]),
            current_node=text(item, "node"),
            step=integer(item, "step"),
            attempt=integer(item, "attempt"),
            next_seq=integer(item, "next_seq"),
            not_before=number(item, "not_before"),
            error=RunError.model_validate_json(error) if error else None,
            created_at=float(item["created_at"]["N"]),
            updated_at=float(item["updated_at"]["N"]),
            finished_at=number(item, "finished_at"),
            idempotency_key=text(item, "idem_key"),
            owner=text(item, "owner"),
            subscribers=sorted(item.get("subs", {}).get("SS", [])),
            delivery=DeliveryNote.model_validate_json(delivery) if delivery else None,
            state_bytes=integer(item, "state_bytes") if "state_bytes" in item else None,
            revision=_revision(item),
            waiting=Waiting.model_validate_json(waiting) if (waiting := text(item, "wt")) else None,
            callbacks=json.loads(closed) if (closed := text(item, "cbs")) else {},
            redriven_at=number(item, "rdv"),
        )
        update: dict[str, Any] = {"state": self._state(run.run_id, item, loaded or {})}
        body, entries = _fanout_parts(item)
        if body is not None:
            fanout = FanOut.model_validate(body)
            update["fanout"] = fanout.model_copy(
                update={"updates": self._lazy(run.run_id, entries, fanout_loaded or {}, escaped=False)}
            )
        return run.model_copy(update=update)

    def _state(self, run_id: str, item: Item, loaded: dict[str, Any]) -> LazyState:
        entries = {_state_name(k): v["S"] for k, v in item["state"]["M"].items()}
        return self._lazy(run_id, entries, loaded, escaped=True)

    def _lazy(
        self, run_id: str, entries: dict[str, str], loaded: dict[str, Any], *, escaped: bool
    ) -> LazyState:
        """A mapping of ``entries`` (name to entry text) that loads each value when it is read."""
        sizes = {
            k: e.size for k, e in ((k, parse_entry(v)) for k, v in entries.items()) if e.size is not None
        }
        pk = _run_pk(run_id)
        stored = _state_key if escaped else str
        name = _state_name if escaped else str

        def load(keys: list[str]) -> dict[str, Any]:
            values = self.values.load(pk, {stored(k): entries[k] for k in keys})
            return {name(k): v for k, v in values.items()}

        return LazyState(entries, load, sizes, {k: v for k, v in loaded.items() if k in entries})

    # state

    def _check_manifest(self, entries: dict[str, str]) -> None:
        total = sum(_entry_size(k, v) for k, v in entries.items())
        if total > self.state_budget:
            raise PayloadTooLargeError(
                f"the run's state manifest needs {total} bytes in its item; the limit is {self.state_budget}"
            )

    @staticmethod
    def _read_condition(
        update: Update, expected: tuple[int, int], log_token: str | None, *, reopen: bool = False
    ) -> str:
        """The run is at ``expected``, holds ``log_token`` (nothing committed since the read) and is active.

        With ``reopen``: FAILED or TIMED_OUT instead of active (a redrive).
        """
        step, attempt, status = update.name("step"), update.name("attempt"), update.name("status")
        token = update.name("log_token")
        pending, running = (update.value(s(v)) for v in (_REOPENABLE if reopen else _ACTIVE))
        condition = (
            f"{step} = {update.value(n(expected[0]))} AND {attempt} = {update.value(n(expected[1]))}"
            f" AND {status} IN ({pending}, {running})"
        )
        if log_token is None:
            return f"{condition} AND attribute_not_exists({token})"
        return f"{condition} AND {token} = {update.value(s(log_token))}"
