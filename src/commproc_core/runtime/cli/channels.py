"""``commproc channels``: installed channel plugins, and the channel configurations stored in the database.

``commproc channels`` alone (or ``channels plugins``) lists the plugins;
``list``, ``add``, ``enable`` and ``disable`` manage the stored
configurations the worker reads.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from commproc_core.errors import ConfigError
from commproc_core.factory import ProcessorFactory
from commproc_core.runtime.cli._common import add_database, configure_logging, print_table, usage_error
from commproc_core.runtime.masking import mask_config, mask_urls

__all__ = ["MIN_ID_PREFIX", "mask_config", "register"]

#: The shortest id prefix ``enable`` and ``disable`` accept: shorter ones match too easily.
MIN_ID_PREFIX = 6


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "channels",
        help="list channel plugins; manage the stored channel configurations",
        description="Without a command: list every discovered channel plugin, its distribution, version "
        "and whether it loads. With one: manage the channel configurations the worker reads from the "
        "database. Exit codes: 0 ok, 1 failed (or a plugin is broken), 2 bad usage or configuration.",
    )
    parser.set_defaults(handler=list_plugins)
    commands = parser.add_subparsers(dest="channels_command", metavar="COMMAND")
    plugins = commands.add_parser("plugins", help="list the installed channel plugins (the default)")
    plugins.set_defaults(handler=list_plugins)

    listing = commands.add_parser("list", help="list the stored channel configurations")
    add_database(listing)
    listing.add_argument(
        "--json", action="store_true", help="one JSON object per configuration (secrets masked)"
    )
    listing.set_defaults(handler=list_configs)

    add = commands.add_parser(
        "add",
        help="store a channel configuration (validated against its plugin)",
        description="Store which processor reads which queue, with what config. The config is checked "
        "by the channel's plugin first; every problem is reported with its field path.",
    )
    add.add_argument("channel_type", metavar="TYPE", help="channel type (sms, email, ...)")
    add.add_argument(
        "queue_url",
        metavar="QUEUE_URL",
        help="the SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT_ID/NAME, or an SQS-compatible "
        "endpoint's), or memory://NAME for a host application's own in-process queue",
    )
    source = add.add_mutually_exclusive_group()
    source.add_argument(
        "--config", metavar="JSON", help="channel config as JSON, e.g. '{\"agent_mode\": true}'"
    )
    source.add_argument("--config-file", metavar="FILE", help="channel config as a JSON or .toml file")
    add.add_argument("--inactive", action="store_true", help="store it disabled")
    add.add_argument(
        "--replace", action="store_true", help="overwrite the config if TYPE and QUEUE_URL exist"
    )
    add_database(add)
    add.set_defaults(handler=add_config)

    for name, active in (("enable", True), ("disable", False)):
        toggle = commands.add_parser(
            name,
            help=f"{name} a stored channel configuration",
            description=f"{name.capitalize()} the configuration named by its id, by an id prefix of at "
            f"least {MIN_ID_PREFIX} characters (`channels list` shows the first 12), or by its channel type "
            "when only one configuration has that type.",
        )
        toggle.add_argument("selector", metavar="ID_OR_TYPE")
        add_database(toggle)
        toggle.set_defaults(handler=set_active, active=active)


def list_plugins(args: argparse.Namespace) -> int:
    del args
    factory = ProcessorFactory()
    infos = factory.list_channels()
    if not infos:
        print(
            "no channels installed: install commproc-sms and commproc-email "
            "(from a checkout: python3 -m pip install ./src/commproc_sms ./src/commproc_email)"
        )
        return 0
    rows = [("CHANNEL", "DISTRIBUTION", "VERSION", "STATUS")]
    broken = False
    for info in infos:
        if info.conflicts:
            status = "conflict: also in " + ", ".join(info.conflicts)
            broken = True
        else:
            error = factory.load_error(info.name)
            status = "ok" if error is None else f"broken: {error.__cause__!r}"
            broken = broken or error is not None
        rows.append((info.name, info.distribution, info.version, status))
    print_table(rows)
    return 1 if broken else 0


def list_configs(args: argparse.Namespace) -> int:
    from commproc_core.runtime.cli._common import open_store

    configure_logging("WARNING")
    store = open_store(args)
    try:
        with store.unit_of_work() as uow:
            configs = uow.channel_configs.find(order_by="created_at")
    finally:
        store.close()
    if args.json:
        for c in configs:
            entry = {
                "id": c.id,
                "channel_type": c.channel_type,
                "queue_url": mask_urls(c.queue_url),
                "is_active": c.is_active,
                "config": mask_config(c.config),
            }
            print(json.dumps(entry, default=str))
        return 0
    if not configs:
        print("no channel configurations stored; add one with `commproc channels add TYPE QUEUE_URL`")
        return 0
    rows = [("ID", "TYPE", "ACTIVE", "QUEUE", "CONFIG KEYS")]
    for c in configs:
        rows.append(
            (
                c.id[:12],
                c.channel_type,
                "yes" if c.is_active else "no",
                mask_urls(c.queue_url),
                ",".join(str(k) for k in c.config),
            )
        )
    print_table(rows)
    return 0


def _config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from commproc_core.runtime.settings import config_from_text, load_channel_config

    if args.config_file:
        return load_channel_config(args.config_file)
    if args.config:
        return config_from_text(args.config, "--config")
    return {}


def _checked_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The config, after every check that needs no database: text, queue URL shape, plugin settings."""
    from commproc_core.runtime.queue_urls import queue_url_problem
    from commproc_core.runtime.settings import text_problem

    for name, value in (("TYPE", args.channel_type), ("QUEUE_URL", args.queue_url)):
        problem = text_problem(value)
        if problem:
            raise ConfigError(f"{name} {problem}")
    problem = queue_url_problem(args.queue_url, allow_memory=True)
    if problem:
        raise ConfigError(f"QUEUE_URL: {problem}")
    config = _config_from_args(args)
    factory = ProcessorFactory()
    try:
        factory.validate_processor_config(args.channel_type, config, raise_on_error=True)
    except (ConfigError, LookupError):
        raise
    except Exception as exc:
        # A plugin's settings check that breaks on an odd value must still end in a
        # clear error naming the field, not a traceback; the value itself is never echoed.
        from commproc_core.runtime.settings import locate_crash

        where = locate_crash(lambda c: factory.validate_processor_config(args.channel_type, c), config)
        raise ConfigError(
            f"invalid config for channel {args.channel_type!r}: the {args.channel_type} plugin could not "
            f"check the value ({type(exc).__name__}); check its type against the channel's documentation"
            + (f" @ {where}" if where else "")
        ) from exc
    return config


def add_config(args: argparse.Namespace) -> int:
    import attrs

    from commproc_core.model import ChannelConfig, utcnow
    from commproc_core.runtime.cli._common import open_store

    configure_logging("WARNING")
    config = _checked_arguments(args)
    store = open_store(args)
    try:
        with store.unit_of_work() as uow:
            existing = uow.channel_configs.find_one(channel_type=args.channel_type, queue_url=args.queue_url)
            if existing is not None and not args.replace:
                return usage_error(
                    f"{args.channel_type} on {args.queue_url} is already configured (id {existing.id}); "
                    "pass --replace to overwrite its config, or use enable/disable"
                )
            if existing is not None:
                stored = uow.channel_configs.update(
                    attrs.evolve(existing, is_active=not args.inactive, config=config, updated_at=utcnow())
                )
            else:
                stored = uow.channel_configs.add(
                    ChannelConfig(
                        channel_type=args.channel_type,
                        queue_url=args.queue_url,
                        is_active=not args.inactive,
                        config=config,
                    )
                )
            uow.commit()
    finally:
        store.close()
    verb = "replaced" if existing is not None else "added"
    state = "active" if stored.is_active else "inactive"
    print(f"{verb} {stored.channel_type} channel {stored.id} ({state}) on {mask_urls(stored.queue_url)}")
    if stored.queue_url.startswith("memory://"):
        print(
            "note: `commproc run` polls SQS and will refuse this memory:// queue; only a host application "
            "whose queue factory serves it can use this configuration"
        )
    return 0


def set_active(args: argparse.Namespace) -> int:
    import attrs

    from commproc_core.model import utcnow
    from commproc_core.runtime.cli._common import open_store

    configure_logging("WARNING")
    store = open_store(args)
    try:
        with store.unit_of_work() as uow:
            configs = uow.channel_configs.find(order_by="created_at")
            long_enough = len(args.selector) >= MIN_ID_PREFIX
            chosen = [c for c in configs if long_enough and c.id.startswith(args.selector)]
            chosen = chosen or [c for c in configs if c.channel_type == args.selector]
            if not chosen:
                hint = (
                    f" (an id prefix needs at least {MIN_ID_PREFIX} characters)"
                    if not long_enough and any(c.id.startswith(args.selector) for c in configs)
                    else "; `commproc channels list` shows the ids"
                )
                raise ConfigError(f"no stored channel configuration matches {args.selector!r}{hint}")
            if len(chosen) > 1:
                listed = ", ".join(
                    f"{c.id[:12]} ({c.channel_type} on {mask_urls(c.queue_url)})" for c in chosen
                )
                return usage_error(f"{args.selector!r} matches several configurations: {listed}; give an id")
            config = uow.channel_configs.update(
                attrs.evolve(chosen[0], is_active=args.active, updated_at=utcnow())
            )
            uow.commit()
    finally:
        store.close()
    state = "enabled" if config.is_active else "disabled"
    print(f"{state} {config.channel_type} channel {config.id} on {mask_urls(config.queue_url)}")
    return 0
