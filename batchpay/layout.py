"""The input layout: canonical columns, header aliases, requirements, file options, limits,
and which duplicates inside a file may be paid.

The built-in layout ships inside the package as ``batchpay/data/layout.toml`` (the same bytes as
``schemas/layout.toml``). A user's layout file is merged over it, so it need only hold what it
changes (:func:`load_layout`):

- ``[file]``, ``[limits]`` and ``[duplicates]`` are merged key by key;
- each ``[columns.NAME]`` table is merged key by key, except that ``aliases`` *extends* the
  built-in list (``replace_aliases = true`` in the same table replaces it), and ``required`` /
  ``required_when`` are one setting: giving either replaces the built-in requirement.

The resulting :class:`Layout` is immutable, is passed to ingest and validation, and knows where
each of its settings came from (:attr:`Layout.origins`, :func:`layout_toml`).
"""

from __future__ import annotations

import json
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from batchpay.errors import ConfigError
from batchpay.money import NumberFormat

if TYPE_CHECKING:
    from batchpay.options import RunOptions

__all__ = [
    "BUILT_IN",
    "CANONICAL_COLUMNS",
    "ColumnKind",
    "ColumnSpec",
    "DuplicateRules",
    "FileOptions",
    "Layout",
    "Limits",
    "for_options",
    "header_key",
    "layout_toml",
    "load_layout",
]

# The origin of a setting nobody overrode, and the file it is read from.
BUILT_IN = "built-in"
_BUILT_IN_FILE = "batchpay/data/layout.toml"

# The data contract between stages (docs/ARCHITECTURE.md), in file order.
CANONICAL_COLUMNS: tuple[str, ...] = (
    "reference",
    "beneficiary_ref",
    "beneficiary_type",
    "first_name",
    "last_name",
    "business_name",
    "registration_number",
    "email",
    "phone",
    "date_of_birth",
    "nationality",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "country",
    "amount",
    "currency",
    "source_currency",
    "payment_method",
    "iban",
    "bic",
    "account_number",
    "routing_number",
    "account_type",
    "sort_code",
    "purpose",
    "description",
)

ColumnKind = Literal["digits", "identifier", "amount", "date", "code", "text"]
_KINDS: frozenset[str] = frozenset(get_args(ColumnKind))
_DELIMITERS = frozenset({",", ";", "\t", "|"})
_DECIMAL_SEPARATORS = frozenset({".", ","})
_THOUSANDS_SEPARATORS = frozenset({".", ",", " ", "'"})


def header_key(text: str) -> str:
    """The form headers are compared in: case-folded letters and digits only.

    "Beneficiary IBAN", "beneficiary_iban" and "BENEFICIARY-IBAN" all give ``beneficiaryiban``.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One canonical column: how to recognise its header and what a row needs in it."""

    name: str
    description: str
    aliases: tuple[str, ...]
    kind: ColumnKind
    required: bool = False
    # Required when another canonical column holds one of these values (compared case-folded).
    required_when: Mapping[str, frozenset[str]] = field(default_factory=dict)
    max_length: int | None = None
    values: frozenset[str] | None = None
    default: str | None = None

    @property
    def optional(self) -> bool:
        """Whether the column may be blank on every row."""
        return not self.required and not self.required_when


@dataclass(frozen=True, slots=True)
class FileOptions:
    """How to read the bytes: CSV delimiter and encoding, XLSX sheet, how amounts are written."""

    delimiter: str = ","
    encoding: str = "utf-8"
    sheet: str | None = None
    decimal_separator: str = "."
    # empty: amounts have no thousands separators; " " also means the no-break spaces
    thousands_separators: tuple[str, ...] = ()
    # rows above the header row (a title, a period) are skipped instead of refused
    skip_title_rows: bool = False
    # a trailing TOTAL row is checked against the rows' amounts (it is never paid)
    check_total_row: bool = False

    @property
    def number_format(self) -> NumberFormat:
        """How the file writes amounts (text cells; an XLSX number cell is a number)."""
        return NumberFormat(self.decimal_separator, self.thousands_separators)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that protect the process from huge or hostile files."""

    # max_rows rows fit under both byte limits: ~250 bytes a CSV row, ~1,300 a workbook row
    # once unzipped (as openpyxl writes one).
    max_file_bytes: int = 512 * 1024 * 1024
    max_rows: int = 1_000_000
    max_xlsx_uncompressed_bytes: int = 2 * 1024 * 1024 * 1024
    max_xlsx_compression_ratio: int = 100
    max_cell_chars: int = 1000


@dataclass(frozen=True, slots=True)
class DuplicateRules:
    """Which duplicates inside one file are paid; every other duplicate refuses the file.

    A row that repeats another (same reference and payee) with different details is always
    refused: nobody can tell which of the two is right.
    """

    # The same row twice is one payment: the later copies are reported, not paid.
    allow_repeats: bool = False
    # References are unique per payee only (supplier invoice numbers), not in the whole file.
    reference_per_payee: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    """The whole input layout. Build it with :func:`load_layout`."""

    columns: tuple[ColumnSpec, ...]
    file: FileOptions = FileOptions()
    limits: Limits = Limits()
    duplicates: DuplicateRules = DuplicateRules()
    source: str = "<built-in>"
    # Every setting as merged (section -> key -> value; columns -> name -> key -> value), and
    # where each came from ("file.delimiter" -> "built-in" or the user's file path).
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    origins: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    _by_key: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_key", _alias_index(self.columns, self.source))

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical column names in layout order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        """The spec of canonical column ``name`` (KeyError if unknown)."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def match_header(self, header: str) -> str | None:
        """The canonical column a file header means, or None when it is not recognised."""
        return self._by_key.get(header_key(header))

    @property
    def default_purpose(self) -> str:
        """The purpose used for rows that leave ``purpose`` blank."""
        return self.column("purpose").default or ""

    @property
    def always_required(self) -> tuple[str, ...]:
        """Columns that must be filled on every row (and so must be in every file)."""
        return tuple(c.name for c in self.columns if c.required)


def load_layout(path: str | Path | None = None) -> Layout:
    """The built-in layout, with the layout file at ``path`` (when given) merged over it.

    The user's file need only hold what it changes; see the module docstring for the rule.
    """
    builtin_text = resources.files("batchpay").joinpath("data/layout.toml").read_text("utf-8")
    merged = _parse(builtin_text, _BUILT_IN_FILE)
    origins = _origins(merged, BUILT_IN)
    source = _BUILT_IN_FILE
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read layout file {source}: {exc.strerror or exc}",
                hint="check the path given for the layout",
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"layout file {source} is not UTF-8 text") from exc
        merged = _merge(merged, _parse(text, source), source, origins)
    return _build_layout(merged, source, origins)


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"layout file {source} is not valid TOML: {exc}",
            hint="fix the syntax; compare with schemas/layout.toml",
        ) from exc


def _origins(raw: Mapping[str, Any], origin: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for section, table in raw.items():
        if section == "columns" and isinstance(table, Mapping):
            for name, spec in table.items():
                for key in spec if isinstance(spec, Mapping) else ():
                    out[f"columns.{name}.{key}"] = origin
        elif isinstance(table, Mapping):
            for key in table:
                out[f"{section}.{key}"] = origin
    return out


def _merge(
    base: Mapping[str, Any], user: Mapping[str, Any], source: str, origins: dict[str, str]
) -> dict[str, Any]:
    """``user`` over ``base``: tables key by key, aliases extended, requirements replaced.

    ``origins`` is updated with ``source`` for every setting the user's file gives.
    """
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for section, table in user.items():
        if section not in merged or not isinstance(table, Mapping):
            merged[section] = table  # refused by _build_layout with a message
            continue
        if section != "columns":
            for key, value in table.items():
                if merged[section].get(key) != value:
                    origins[f"{section}.{key}"] = source
            merged[section].update(table)
            continue
        columns = merged["columns"]
        for name, spec in table.items():
            if name not in columns or not isinstance(spec, Mapping):
                columns[name] = spec  # refused by _build_layout with a message
                continue
            columns[name] = _merge_column(columns[name], spec, f"columns.{name}", source, origins)
    return merged


def _merge_column(
    base: Mapping[str, Any],
    user: Mapping[str, Any],
    where: str,
    source: str,
    origins: dict[str, str],
) -> dict[str, Any]:
    column = dict(base)
    if "required" in user or "required_when" in user:
        # one requirement: the user's replaces the built-in one whichever key it uses
        for key in ("required", "required_when"):
            if key not in user and column.pop(key, None) is not None:
                origins.pop(f"{where}.{key}", None)
    replace_aliases = user.get("replace_aliases", False)
    if not isinstance(replace_aliases, bool):
        raise _bad(source, f"{where}.replace_aliases must be true or false")
    for key, value in user.items():
        if key == "replace_aliases":
            continue
        if key == "aliases" and not replace_aliases and isinstance(value, list):
            known = {header_key(str(a)) for a in column.get("aliases", [])}
            added = [a for a in value if header_key(str(a)) not in known]
            column["aliases"] = [*column.get("aliases", []), *added]
            if added:
                before = origins.get(f"{where}.aliases", BUILT_IN)
                origins[f"{where}.aliases"] = f"{before} + {source}"
            continue
        if base.get(key) != value:
            origins[f"{where}.{key}"] = source
        column[key] = value
    if replace_aliases and "aliases" not in user:
        column["aliases"] = []
        origins[f"{where}.aliases"] = source
    return column


def _build_layout(raw: Mapping[str, Any], source: str, origins: Mapping[str, str]) -> Layout:
    unknown = set(raw) - {"file", "limits", "duplicates", "columns"}
    if unknown:
        raise _bad(source, f"unknown section(s) {', '.join(sorted(unknown))}")
    file_opts = _build_file_options(_table(raw, "file", source), source)
    limits = _build_limits(_table(raw, "limits", source), source)
    duplicates = _build_duplicates(_table(raw, "duplicates", source), source)
    columns_raw = _table(raw, "columns", source)
    missing = [n for n in CANONICAL_COLUMNS if n not in columns_raw]
    extra = [n for n in columns_raw if n not in CANONICAL_COLUMNS]
    if extra:
        raise _bad(
            source,
            f"unknown column(s) {', '.join(extra)}; the canonical columns are fixed, "
            "rename a header with `aliases` instead",
        )
    if missing:
        raise _bad(source, f"missing column(s) {', '.join(missing)}")
    columns = tuple(
        _build_column(name, _as_table(columns_raw[name], f"columns.{name}", source), source)
        for name in CANONICAL_COLUMNS
    )
    return Layout(
        columns=columns,
        file=file_opts,
        limits=limits,
        duplicates=duplicates,
        source=source,
        settings=raw,
        origins=dict(origins),
    )


def _build_file_options(raw: Mapping[str, Any], source: str) -> FileOptions:
    _only_keys(
        raw,
        {
            "delimiter",
            "encoding",
            "sheet",
            "decimal_separator",
            "thousands_separator",
            "skip_title_rows",
            "check_total_row",
        },
        "file",
        source,
    )
    flags: dict[str, bool] = {}
    for name in ("skip_title_rows", "check_total_row"):
        flags[name] = raw.get(name, False)
        if not isinstance(flags[name], bool):
            raise _bad(source, f"file.{name} must be true or false")
    delimiter = _str(raw, "delimiter", ",", "file", source)
    if delimiter not in _DELIMITERS:
        raise _bad(source, f'file.delimiter must be one of "," ";" "\\t" "|", not {delimiter!r}')
    encoding = _str(raw, "encoding", "utf-8", "file", source)
    try:
        "".encode(encoding)
    except LookupError as exc:
        raise _bad(source, f"file.encoding {encoding!r} is not a known text encoding") from exc
    sheet = _str(raw, "sheet", "", "file", source).strip()
    decimal = _str(raw, "decimal_separator", ".", "file", source)
    if decimal not in _DECIMAL_SEPARATORS:
        raise _bad(source, f'file.decimal_separator must be "." or ",", not {decimal!r}')
    listed = raw.get("thousands_separator", "")
    thousands = tuple(
        _str_list(listed, "file.thousands_separator", source)
        if isinstance(listed, list)
        else [t for t in [_str(raw, "thousands_separator", "", "file", source)] if t]
    )
    for sep in thousands:
        if sep not in _THOUSANDS_SEPARATORS or sep == decimal:
            raise _bad(
                source,
                'file.thousands_separator must be "", ".", ",", " " or "\'" and not the '
                f"decimal separator, not {sep!r}",
            )
    return FileOptions(
        delimiter=delimiter,
        encoding=encoding,
        sheet=sheet or None,
        decimal_separator=decimal,
        thousands_separators=thousands,
        **flags,
    )


def _build_limits(raw: Mapping[str, Any], source: str) -> Limits:
    defaults = Limits()
    names = set(Limits.__dataclass_fields__)
    _only_keys(raw, names, "limits", source)
    values: dict[str, int] = {}
    for name in names:
        value = raw.get(name, getattr(defaults, name))
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise _bad(source, f"limits.{name} must be a positive whole number")
        values[name] = value
    return Limits(**values)


def _build_duplicates(raw: Mapping[str, Any], source: str) -> DuplicateRules:
    names = set(DuplicateRules.__dataclass_fields__)
    _only_keys(raw, names, "duplicates", source)
    values: dict[str, bool] = {}
    for name in names:
        value = raw.get(name, False)
        if not isinstance(value, bool):
            raise _bad(source, f"duplicates.{name} must be true or false")
        values[name] = value
    return DuplicateRules(**values)


def _build_column(name: str, raw: Mapping[str, Any], source: str) -> ColumnSpec:
    where = f"columns.{name}"
    _only_keys(
        raw,
        {
            "description",
            "aliases",
            "required",
            "required_when",
            "kind",
            "max_length",
            "values",
            "default",
            "replace_aliases",
        },
        where,
        source,
    )
    kind = _str(raw, "kind", "text", where, source)
    if kind not in _KINDS:
        raise _bad(source, f"{where}.kind must be one of {', '.join(sorted(_KINDS))}")
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise _bad(source, f"{where}.required must be true or false")
    required_when: dict[str, frozenset[str]] = {}
    for other, listed in _as_table(raw.get("required_when", {}), where, source).items():
        if other not in CANONICAL_COLUMNS or other == name:
            raise _bad(source, f"{where}.required_when names unknown column {other!r}")
        required_when[other] = frozenset(v.casefold() for v in _str_list(listed, where, source))
    if required and required_when:
        raise _bad(source, f"{where}: use either required or required_when, not both")
    max_length = raw.get("max_length")
    if max_length is not None and (
        not isinstance(max_length, int) or isinstance(max_length, bool) or max_length <= 0
    ):
        raise _bad(source, f"{where}.max_length must be a positive whole number")
    values = raw.get("values")
    allowed = (
        frozenset(v.casefold() for v in _str_list(values, where, source))
        if values is not None
        else None
    )
    default = raw.get("default")
    if default is not None and not isinstance(default, str):
        raise _bad(source, f"{where}.default must be text")
    return ColumnSpec(
        name=name,
        description=_str(raw, "description", "", where, source),
        aliases=tuple(_str_list(raw.get("aliases", []), where, source)),
        kind=kind,  # type: ignore[arg-type]  # checked against _KINDS above
        required=required,
        required_when=required_when,
        max_length=max_length,
        values=allowed,
        default=default or None,
    )


def _alias_index(columns: tuple[ColumnSpec, ...], source: str) -> dict[str, str]:
    index: dict[str, str] = {}
    for spec in columns:
        for label in (spec.name, *spec.aliases):
            key = header_key(label)
            if not key:
                raise _bad(source, f"columns.{spec.name} has an empty alias")
            owner = index.setdefault(key, spec.name)
            if owner != spec.name:
                raise _bad(
                    source,
                    f"header {label!r} would match both {owner} and {spec.name}; "
                    "an alias may belong to one column only",
                )
    return index


def _bad(source: str, what: str) -> ConfigError:
    return ConfigError(
        f"layout {source}: {what}", hint="compare with schemas/layout.toml and fix the layout"
    )


def _table(raw: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    return _as_table(raw.get(key, {}), key, source)


def _as_table(value: Any, where: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(source, f"{where} must be a table")
    return value


def _only_keys(raw: Mapping[str, Any], allowed: set[str], where: str, source: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise _bad(source, f"unknown key(s) in {where}: {', '.join(sorted(unknown))}")


def _str(raw: Mapping[str, Any], key: str, default: str, where: str, source: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise _bad(source, f"{where}.{key} must be text")
    return value


def _str_list(value: Any, where: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(source, f"{where}: expected a list of texts")
    return list(value)


def layout_toml(layout: Layout) -> str:
    """The effective layout as TOML, each setting followed by where it came from."""
    lines = [
        "# The effective batchpay layout: the built-in one"
        + (f" with {layout.source} merged over it." if layout.source != _BUILT_IN_FILE else "."),
        "# After each setting, where it came from (built-in, or the file that set it).",
    ]
    settings = layout.settings
    for section in ("file", "limits", "duplicates"):
        lines += ["", f"[{section}]"]
        for key, value in settings.get(section, {}).items():
            lines.append(_toml_line(key, value, layout.origins.get(f"{section}.{key}", BUILT_IN)))
    for name, spec in settings.get("columns", {}).items():
        lines += ["", f"[columns.{name}]"]
        for key, value in spec.items():
            where = layout.origins.get(f"columns.{name}.{key}", BUILT_IN)
            lines.append(_toml_line(key, value, where))
    return "\n".join(lines) + "\n"


def _toml_line(key: str, value: Any, origin: str) -> str:
    return f"{key} = {_toml_value(value)}  # {origin}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")  # pragma: no cover


def for_options(options: RunOptions) -> Layout:
    """The layout a run reads its file with, the options' ``[file]`` settings over it
    (``decimal_comma``, ``delimiter``, ``encoding``, ``check_total_row``)."""
    lay = load_layout(options.layout_path)
    file = lay.file
    if options.decimal_comma:
        file = replace(file, decimal_separator=",", thousands_separators=(".", " "))
    if options.delimiter is not None:
        file = replace(file, delimiter=options.delimiter)
    if options.encoding is not None:
        file = replace(file, encoding=options.encoding)
    if options.check_total_row is not None:
        file = replace(file, check_total_row=options.check_total_row)
    return lay if file is lay.file else replace(lay, file=file)
