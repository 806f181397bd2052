"""Writing many finished trials to an SQLite study in one transaction.

Optuna's ``add_trials`` writes trial by trial, each in its own transaction with a lookup per
attribute and a count of all earlier trials (the trial number) — about 25 ms a trial that grows with
the study. The batched runner writes hundreds of finished trials at once, so bsopt inserts them with
a handful of multi-row statements into Optuna's own tables (the table definitions of the installed
Optuna, used only when the database schema is at that Optuna's head revision). Anything else — other
databases, older schemas — goes through ``add_trials``.
"""

from __future__ import annotations

import json
from typing import Any

import optuna
from optuna.distributions import distribution_to_json
from optuna.trial import FrozenTrial

_SCHEMA_OK: dict[int, bool] = {}


def _at_head(storage, *, sqlite_only: bool = False):
    """The RDB storage behind ``storage`` if its schema is the installed Optuna's head revision (so
    that Optuna's own table definitions describe it), else None."""
    backend = getattr(storage, "_backend", storage)  # optuna wraps RDB storages in a cache
    if not isinstance(backend, optuna.storages.RDBStorage):
        return None
    if sqlite_only and backend.engine.dialect.name != "sqlite":
        return None
    key = id(backend)
    if key not in _SCHEMA_OK:
        try:
            _SCHEMA_OK[key] = backend.get_current_version() == backend.get_head_version()
        except Exception:  # noqa: BLE001 - anything unexpected: use Optuna's own path
            _SCHEMA_OK[key] = False
    return backend if _SCHEMA_OK[key] else None


def _rdb(storage):
    return _at_head(storage, sqlite_only=True)


def supported(storage) -> bool:
    return _rdb(storage) is not None


def n_trials(study: optuna.Study) -> int:
    """The study's number of trials, counted by the database where it is one (Optuna's cached RDB
    storage reads every trial to count them)."""
    return count_trials(study._storage, study._study_id)


def count_trials(storage, study_id: int) -> int:
    backend = _at_head(storage)
    if backend is None:
        return storage.get_n_trials(study_id)
    from optuna.storages._rdb import models
    from sqlalchemy import func, select

    T = models.TrialModel.__table__
    with backend.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(T).where(T.c.study_id == study_id)).scalar_one()


def add_trials(study: optuna.Study, trials: list[FrozenTrial]) -> None:
    """Append finished ``trials`` to ``study`` (new numbers and ids, as ``Study.add_trials`` does)."""
    if not trials:
        return
    if not supported(study._storage):
        study.add_trials(trials)
        return
    from optuna.storages._rdb import models
    from sqlalchemy import func, insert, select, update

    backend = _rdb(study._storage)
    T = models.TrialModel.__table__
    V = models.TrialValueModel.__table__
    P = models.TrialParamModel.__table__
    U = models.TrialUserAttributeModel.__table__
    S = models.TrialSystemAttributeModel.__table__
    to_stored = models.TrialValueModel.value_to_stored_repr
    with backend.engine.begin() as conn:
        # take the database's write lock before counting, so that the numbers this batch takes cannot
        # be taken by another writer between the count and the insert (SQLite starts a transaction at
        # its first write)
        St = models.StudyModel.__table__
        conn.execute(update(St).where(St.c.study_id == study._study_id).values(study_id=St.c.study_id))
        n0 = conn.execute(select(func.count()).select_from(T).where(T.c.study_id == study._study_id)).scalar_one()
        rows = [{"number": n0 + i, "study_id": study._study_id, "state": t.state, "datetime_start": t.datetime_start,
                 "datetime_complete": t.datetime_complete} for i, t in enumerate(trials)]
        ids = conn.execute(insert(T).returning(T.c.trial_id, sort_by_parameter_order=True), rows).scalars().all()
        values, params, user, system = [], [], [], []
        for tid, t in zip(ids, trials, strict=True):
            for objective, value in enumerate(t.values or ()):
                stored, kind = to_stored(value)
                values.append({"trial_id": tid, "objective": objective, "value": stored, "value_type": kind})
            for name, value in t.params.items():
                dist = t.distributions[name]
                params.append({"trial_id": tid, "param_name": name, "param_value": dist.to_internal_repr(value),
                               "distribution_json": distribution_to_json(dist)})
            for key, value in t.user_attrs.items():
                user.append({"trial_id": tid, "key": key, "value_json": json.dumps(value)})
            for key, value in t.system_attrs.items():
                system.append({"trial_id": tid, "key": key, "value_json": json.dumps(value)})
        for table, data in ((V, values), (P, params), (U, user), (S, system)):
            if data:
                conn.execute(insert(table), data)


def constraint_attrs(violations: dict[str, float]) -> dict[str, float]:
    """The trial system attributes ``Trial.set_constraint`` writes (one per constraint)."""
    try:
        from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
    except ImportError:  # pragma: no cover - other Optuna versions
        _CONSTRAINTS_KEY = "constraints"
    return {f"{_CONSTRAINTS_KEY}:{k}": float(v) for k, v in violations.items()}


def set_params(study: optuna.Study, trial, params: dict[str, Any], distributions: dict) -> None:
    """Record parameter values on a running trial that its sampler did not propose (a co-design trial's
    folding, solved exactly after the sampler chose its quantisation)."""
    for name, value in params.items():
        dist = distributions[name]
        study._storage.set_trial_param(trial._trial_id, name, dist.to_internal_repr(value), dist)


def set_curve(study: optuna.Study, trial, values: list[float]) -> None:
    """A running trial's intermediate values (step -> value: a training's accuracy per epoch), which
    ``Trial.report`` refuses in multi-objective studies and optuna-dashboard plots as learning curves."""
    for step, value in enumerate(values):
        study._storage.set_trial_intermediate_value(trial._trial_id, step, float(value))


def set_attrs(study: optuna.Study, trial, user: dict, constraints: dict[str, float]) -> None:
    """Set a running trial's user attributes and constraints in one transaction (RDB storages at the
    installed Optuna's schema), else through the Trial API one by one."""
    backend = _at_head(study._storage)
    if backend is None:
        for key, value in user.items():
            trial.set_user_attr(key, value)
        for key, value in constraints.items():
            trial.set_constraint(key, value)
        return
    from optuna.storages._rdb import models

    with backend.engine.begin() as conn:
        _replace_attrs(conn, models.TrialUserAttributeModel.__table__, trial._trial_id, user)
        _replace_attrs(conn, models.TrialSystemAttributeModel.__table__, trial._trial_id,
                       constraint_attrs(constraints))


def _replace_attrs(conn, table, trial_id: int, attrs: dict) -> None:
    """Set attributes of one trial in an open transaction (existing keys are replaced)."""
    from sqlalchemy import delete, insert

    if attrs:
        conn.execute(delete(table).where(table.c.trial_id == trial_id, table.c.key.in_(list(attrs))))
        conn.execute(insert(table), [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
                                     for k, v in attrs.items()])


def set_finished_trial_system_attr(study: optuna.Study, trial_id: int, key: str, value) -> bool:
    """Add a system attribute to a *finished* trial (Optuna's API refuses; its artifact listing reads
    them). RDB storages at the installed Optuna's schema only; returns False elsewhere."""
    backend = _at_head(study._storage)
    if backend is None:
        return False
    from optuna.storages._rdb import models

    with backend.engine.begin() as conn:
        _replace_attrs(conn, models.TrialSystemAttributeModel.__table__, trial_id, {key: value})
    return True


class TrialRecord:
    """A finished or running trial as read by :func:`read_trials`: what queries, reports and figures
    use (number, state, objective values, user attributes, times) — not its parameters. Use
    :func:`full_trial` for an ``optuna`` ``FrozenTrial`` with parameters."""

    __slots__ = ("_trial_id", "number", "state", "values", "user_attrs", "datetime_start", "datetime_complete",
                 "partial")

    def __init__(self, trial_id, number, state, values, user_attrs, datetime_start, datetime_complete):
        self.partial = False  # True: only some user attributes were read (see read_trials' keys)
        self._trial_id = trial_id
        self.number = number
        self.state = state
        self.values = values
        self.user_attrs = user_attrs
        self.datetime_start = datetime_start
        self.datetime_complete = datetime_complete

    @property
    def constraints(self) -> list[float]:
        """Constraint violations, as bsopt records them beside Optuna's (user attributes ``c:<name>``)."""
        return [v for k, v in self.user_attrs.items() if k[:2] == "c:"]

    def __repr__(self) -> str:
        return f"TrialRecord(number={self.number}, state={self.state.name}, values={self.values})"


def _key_filter(column, keys):
    """An SQL condition: ``column`` is one of ``keys`` (a key ending in ``:`` is a prefix)."""
    from sqlalchemy import or_

    exact = [k for k in keys if not k.endswith(":")]
    prefixes = [k for k in keys if k.endswith(":")]
    conds = [column.in_(exact)] if exact else []
    conds += [column.like(p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%", escape="\\")
              for p in prefixes]
    return or_(*conds) if conds else column.is_(None)


def read_trials(study: optuna.Study, states=None, keys=None) -> list:
    """Every trial of ``study`` (or those in ``states``) in number order, without parameters and
    distributions: on an RDB storage at the installed Optuna's schema a few plain queries (about 1 s
    and no ORM objects for 7,000 trials, against ~11 s and 1.6 GB through Optuna's ``get_trials``);
    elsewhere Optuna's own trials.

    ``keys``: read only these user attributes (a key ending in ``:`` is a prefix, e.g. ``"c:"`` for
    every constraint), so that a question about 20,000 trials reads a few of their ~30 attributes;
    :func:`complete_attrs` reads the rest for the few trials an answer shows."""
    backend = _at_head(study._storage)
    if backend is None:
        return study.get_trials(deepcopy=False, states=states)
    from optuna.storages._rdb import models
    from sqlalchemy import select

    T = models.TrialModel.__table__
    V = models.TrialValueModel.__table__
    U = models.TrialUserAttributeModel.__table__
    from_stored = models.TrialValueModel.stored_repr_to_value
    sid = study._study_id
    where = [T.c.study_id == sid]
    if states is not None:
        where.append(T.c.state.in_(list(states)))
    with backend.engine.connect() as conn:
        rows = {r[0]: TrialRecord(r[0], r[1], r[2], None, {}, r[3], r[4])
                for r in conn.execute(select(T.c.trial_id, T.c.number, T.c.state, T.c.datetime_start,
                                             T.c.datetime_complete).where(*where).order_by(T.c.number))}
        for tid, value, kind in conn.execute(
                select(V.c.trial_id, V.c.value, V.c.value_type).join(T, T.c.trial_id == V.c.trial_id)
                .where(*where).order_by(V.c.trial_id, V.c.objective)):
            rec = rows[tid]
            if rec.values is None:
                rec.values = []
            rec.values.append(from_stored(value, kind))
        query = select(U.c.trial_id, U.c.key, U.c.value_json).join(T, T.c.trial_id == U.c.trial_id).where(*where)
        if keys is not None:
            query = query.where(_key_filter(U.c.key, keys))
        _fill_attrs(rows, conn.execute(query))
    records = list(rows.values())
    if keys is not None:
        for rec in records:
            rec.partial = True
    return records


def _fill_attrs(rows: dict, result) -> None:
    loads = json.loads
    for tid, key, text in result:
        try:  # most attributes are plain numbers
            value = float(text) if text[0] in "-0123456789" and "." in text else loads(text)
        except (ValueError, IndexError):
            value = loads(text)
        rows[tid].user_attrs[key] = value


def attr_names(study: optuna.Study, prefix: str) -> set[str]:
    """The user-attribute names (without ``prefix``) any trial of ``study`` records under ``prefix``."""
    backend = _at_head(study._storage)
    if backend is None:
        return {k[len(prefix):] for t in study.get_trials(deepcopy=False) for k in t.user_attrs
                if k.startswith(prefix)}
    from optuna.storages._rdb import models
    from sqlalchemy import select

    T = models.TrialModel.__table__
    U = models.TrialUserAttributeModel.__table__
    with backend.engine.connect() as conn:
        return {k[len(prefix):] for (k,) in conn.execute(
            select(U.c.key).distinct().join(T, T.c.trial_id == U.c.trial_id)
            .where(T.c.study_id == study._study_id, _key_filter(U.c.key, [prefix])))}


def add_attrs(study: optuna.Study, records: list, keys=None) -> list:
    """``records`` (from :func:`read_trials` with ``keys``) with the user attributes ``keys`` read too
    (``None``: all of them; the records are then complete)."""
    backend = _at_head(study._storage)
    todo = {r._trial_id: r for r in records if getattr(r, "partial", False)}
    if backend is None or not todo:
        return records
    from optuna.storages._rdb import models
    from sqlalchemy import select

    U = models.TrialUserAttributeModel.__table__
    ids = list(todo)
    with backend.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            where = [U.c.trial_id.in_(ids[i:i + 500])] + ([_key_filter(U.c.key, keys)] if keys is not None else [])
            _fill_attrs(todo, conn.execute(select(U.c.trial_id, U.c.key, U.c.value_json).where(*where)))
    if keys is None:
        for rec in todo.values():
            rec.partial = False
    return records


def complete_attrs(study: optuna.Study, records: list) -> list:
    """``records`` (from :func:`read_trials` with ``keys``) with all their user attributes read."""
    return add_attrs(study, records)


def _rdb_any(storage):
    """The RDB storage behind ``storage`` (any schema), else None."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def trials_in(study: optuna.Study, states) -> list[FrozenTrial]:
    """The ``FrozenTrial``s of ``study`` in ``states``, read with the database's filter: Optuna's cached
    RDB storage reads *every* trial on first use (40 s and 2 GB for 20,000 trials) to answer this."""
    backend = _rdb_any(study._storage)
    if backend is None:
        return study.get_trials(deepcopy=False, states=states)
    return backend.get_all_trials(study._study_id, deepcopy=False, states=states)


def full_trials(study: optuna.Study, trial_ids, *, user_attrs: bool = True) -> list[FrozenTrial]:
    """The ``FrozenTrial``s (with parameters and system attributes) of the trials ``trial_ids``, in
    trial-id order, without reading the others: a bounded history for a sampler (``user_attrs=False``:
    without the user attributes, which samplers do not read). At the installed Optuna's schema a few
    plain queries (each distribution parsed once, about 10x faster than Optuna's ORM); elsewhere
    Optuna's own trials."""
    wanted = sorted(set(trial_ids))
    if not wanted:
        return []
    backend = _at_head(study._storage)
    if backend is None:
        by_id = {t._trial_id: t for t in study.get_trials(deepcopy=False)}
        return [by_id[i] for i in wanted if i in by_id]
    from optuna.distributions import json_to_distribution
    from optuna.storages._rdb import models
    from sqlalchemy import select

    T = models.TrialModel.__table__
    V = models.TrialValueModel.__table__
    P = models.TrialParamModel.__table__
    U = models.TrialUserAttributeModel.__table__
    S = models.TrialSystemAttributeModel.__table__
    I = models.TrialIntermediateValueModel.__table__  # noqa: E741 - Optuna's table
    from_stored = models.TrialValueModel.stored_repr_to_value
    from_stored_iv = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value
    dists: dict[str, object] = {}
    out = []
    with backend.engine.connect() as conn:
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            rows = {r[0]: {"number": r[1], "state": r[2], "start": r[3], "complete": r[4], "values": {},
                           "params": {}, "dists": {}, "user": {}, "system": {}, "iv": {}}
                    for r in conn.execute(select(T.c.trial_id, T.c.number, T.c.state, T.c.datetime_start,
                                                 T.c.datetime_complete).where(T.c.trial_id.in_(chunk)))}
            for tid, obj, value, kind in conn.execute(select(V.c.trial_id, V.c.objective, V.c.value, V.c.value_type)
                                                      .where(V.c.trial_id.in_(chunk))):
                rows[tid]["values"][obj] = from_stored(value, kind)
            for tid, name, value, djson in conn.execute(select(P.c.trial_id, P.c.param_name, P.c.param_value,
                                                               P.c.distribution_json).where(P.c.trial_id.in_(chunk))):
                dist = dists.get(djson)
                if dist is None:
                    dist = dists[djson] = json_to_distribution(djson)
                rows[tid]["params"][name] = dist.to_external_repr(value)
                rows[tid]["dists"][name] = dist
            tables = [(S, "system")] + ([(U, "user")] if user_attrs else [])
            for table, slot in tables:
                for tid, key, text in conn.execute(select(table.c.trial_id, table.c.key, table.c.value_json)
                                                   .where(table.c.trial_id.in_(chunk))):
                    rows[tid][slot][key] = json.loads(text)
            for tid, step, value, kind in conn.execute(select(I.c.trial_id, I.c.step, I.c.intermediate_value,
                                                              I.c.intermediate_value_type).where(I.c.trial_id.in_(chunk))):
                rows[tid]["iv"][step] = from_stored_iv(value, kind)
            for tid in chunk:
                r = rows.get(tid)
                if r is None:
                    continue
                values = [r["values"][k] for k in sorted(r["values"])] or None
                out.append(FrozenTrial(number=r["number"], state=r["state"], value=None, values=values,
                                       datetime_start=r["start"], datetime_complete=r["complete"],
                                       params=r["params"], distributions=r["dists"], user_attrs=r["user"],
                                       system_attrs=r["system"], intermediate_values=r["iv"], trial_id=tid))
    return out


def max_system_attr(study: optuna.Study, key: str):
    """The largest value of a trial system attribute over the study's completed trials (None: none)."""
    backend = _at_head(study._storage)
    if backend is None:
        vals = [t.system_attrs.get(key) for t in trials_in(study, (optuna.trial.TrialState.COMPLETE,))]
        vals = [v for v in vals if v is not None]
        return max(vals) if vals else None
    from optuna.storages._rdb import models
    from sqlalchemy import select

    T = models.TrialModel.__table__
    S = models.TrialSystemAttributeModel.__table__
    with backend.engine.connect() as conn:
        vals = [json.loads(v) for (v,) in conn.execute(
            select(S.c.value_json).join(T, T.c.trial_id == S.c.trial_id)
            .where(T.c.study_id == study._study_id, T.c.state == optuna.trial.TrialState.COMPLETE, S.c.key == key))]
    return max(vals) if vals else None


def full_trial(study: optuna.Study, trial) -> FrozenTrial:
    """The ``FrozenTrial`` (with parameters) of a trial or :class:`TrialRecord`."""
    if isinstance(trial, FrozenTrial):
        return trial
    return study._storage.get_trial(trial._trial_id)
