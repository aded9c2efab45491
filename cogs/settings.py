"""/imagine-settings: a server's defaults, allowed models, limits, budgets, moderation and usage. Manage Server only.

Hidden from other members by default permissions, and checked again when run, since server owners can
change who sees a command.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from services.errors import BadInput
from services.jobs.kinds.edit import EDITORS
from services.jobs.kinds.variation import VARIERS
from services.rules import moderation as mod
from services.rules import usage
from services.rules.options import ModelNeed, RequestContext, allowed_models, model_choice, only_edits, usable
from services.rules.server_settings import (
    allowed_after,
    describe_limits,
    effective,
    empty,
    limits_after,
    model_list,
    shown_value,
    unusable_defaults,
    validated_defaults,
)
from services.rules.variation_models import can_vary
from services.store.models import GuildSettings
from services.store.saving import save_over_what_was_read
from services.text import Text, _, joined, verbatim
from ui.choices import given, model_choices
from ui.replies import reply_ephemeral

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

Interaction = discord.Interaction[Any]
SAVES = {"saves": True}  # the error path says "Not saved" when these commands refuse something
# L10N: where a setting's value comes from, in /imagine-settings show
SOURCES = {"server": _("server"), "built-in": _("built-in")}


@app_commands.guild_only()
@app_commands.allowed_installs(guilds=True, users=False)  # a server's settings: only where the bot was added
@app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
@app_commands.default_permissions(manage_guild=True)
class Admin(commands.GroupCog, group_name="imagine-settings", group_description="Server settings for /imagine"):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot
        self.catalogue = bot.settings.catalogue
        super().__init__()

    async def interaction_check(self, interaction: Interaction) -> bool:
        # Checked at run time too: the default permission only hides the command, and owners can change that.
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    async def _change(self, guild_id: int, change: Callable[[GuildSettings], dict[str, Any]]) -> GuildSettings:
        """Save the fields `change` computes from the stored settings (it may refuse with BadInput). Saved only
        over the settings it was computed from, else computed again from the newer ones: two admins changing
        settings at once (in one process or two) both keep their change. Returns the settings saved."""
        store = self.bot.store

        def changed(stored: GuildSettings | None) -> GuildSettings:
            current = stored or empty(guild_id)
            # Later than the stored time even on a clock that stepped back: it tells this save from that one.
            updated_at = max(time.time(), current.updated_at + 0.001)
            return dataclasses.replace(current, updated_at=updated_at, **change(current))

        return await save_over_what_was_read(
            lambda: store.get_guild_settings(guild_id),
            changed,
            lambda settings, stored: store.replace_guild_settings(settings, over=stored),
            what=f"the settings of server {guild_id}",
        )

    @app_commands.command(name="show", description="This server's settings and where each comes from")
    async def show(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        guild = await self.bot.store.get_guild_settings(interaction.guild_id)
        rows = effective(self.catalogue, guild, default_model=self.bot.settings.default_model)
        shown: list[Text] = [
            _(
                "**{name}**: `{value}` ({source})",
                name=row.name,
                value=shown_value(self.catalogue, row.name, row.value),
                source=SOURCES[row.source],
            )
            for row in rows
        ]
        context = await self.bot.admission.context(interaction.guild_id, interaction.user.id)
        used, stale = model_choice(None, dataclasses.replace(context, user_prefs={}), images=0)
        if stale and usable(stale, context) and only_edits(stale, context):  # saved by an older version
            shown.append(
                _(
                    "⚠️ The default model {model} only edits images, so /imagine without an image uses {used}.",
                    model=stale.rsplit("/", maxsplit=1)[-1],
                    used=used.rsplit("/", maxsplit=1)[-1],
                )
            )
        elif stale:  # hidden or removed by the operator, or no longer allowed here: /imagine passes it over
            shown.append(
                _(
                    "⚠️ The default model {model} is no longer available, so /imagine uses {used}.",
                    model=stale.rsplit("/", maxsplit=1)[-1],
                    used=used.rsplit("/", maxsplit=1)[-1],
                )
            )
        shown += unusable_defaults(self.catalogue, guild.defaults if guild else {})
        shown.append(_("**Allowed models**: {models}", models=model_list(allowed_models(context))))
        shown.append(_("**✏️ Edits use**: {model}", model=_model_or_reason(EDITORS, context)))
        shown.append(_("**🪄 Variations use**: {model}", model=_model_or_reason(VARIERS, context)))
        shown += describe_limits(self.bot.admission.limits(context))
        await reply_ephemeral(interaction, joined(shown))

    @app_commands.command(name="set", description="Set this server's defaults for /imagine", extras=SAVES)
    @app_commands.describe(
        model="Default model", aspect_ratio="Default shape, e.g. 16:9", output_format="webp, jpg or png",
        output_quality="0-100, for jpg and webp", num_outputs="Images per request (1-4, schnell/dev)",
        edit_model="The model for ✏️ Edit and Edit with FLUX (Kontext or FLUX.2)",
        variation_model="The model behind Vary and V1-V4 (flux-dev or flux-1.1-pro-ultra)",
    )  # fmt: skip
    async def set_defaults(
        self,
        interaction: Interaction,
        model: str | None = None,
        aspect_ratio: str | None = None,
        output_format: str | None = None,
        output_quality: app_commands.Range[int, 0, 100] | None = None,
        num_outputs: app_commands.Range[int, 1, 4] | None = None,
        edit_model: str | None = None,
        variation_model: str | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        options = given(
            model=model, aspect_ratio=aspect_ratio, output_format=output_format,
            output_quality=output_quality, num_outputs=num_outputs, edit_model=edit_model,
            variation_model=variation_model,
        )  # fmt: skip
        if not options:
            await reply_ephemeral(interaction, _("Nothing to change: give at least one option."))
            return
        default_model = self.bot.settings.default_model
        saved = await self._change(
            interaction.guild_id,
            lambda current: {
                "defaults": validated_defaults(self.catalogue, current.defaults, options, default_model=default_model)
            },
        )
        defaults = saved.defaults
        changed = ", ".join(f"{k} → `{shown_value(self.catalogue, k, defaults.get(k, v))}`" for k, v in options.items())
        await reply_ephemeral(interaction, _("Server defaults updated: {changes}.", changes=changed))

    @set_defaults.autocomplete("model")
    async def _set_model(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices(self.catalogue.values(), current)

    @set_defaults.autocomplete("edit_model")
    async def _set_edit_model(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices([spec for spec in self.catalogue.values() if spec.takes_images], current)

    @set_defaults.autocomplete("variation_model")
    async def _set_variation_model(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices([spec for spec in self.catalogue.values() if can_vary(spec.id)], current)

    @app_commands.command(name="reset", description="Back to the built-in defaults")
    async def reset(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        await self._change(interaction.guild_id, lambda _current: {"defaults": {}})
        await reply_ephemeral(interaction, _("Server defaults reset to the built-in ones."))

    @app_commands.command(name="models", description="Which models members may use", extras=SAVES)
    @app_commands.describe(
        allow="Allow this model", deny="Stop allowing this model",
        everything="Allow every model", only_standard="Allow only the non-premium models (no pro/ultra/max)",
    )  # fmt: skip
    async def models(
        self,
        interaction: Interaction,
        allow: str | None = None,
        deny: str | None = None,
        everything: bool = False,
        only_standard: bool = False,
    ) -> None:
        assert interaction.guild_id is not None
        if allow or deny or everything or only_standard:
            current = await self._change(
                interaction.guild_id,
                lambda current: {
                    "allowed_models": allowed_after(
                        self.catalogue,
                        current.allowed_models,
                        allow=allow,
                        deny=deny,
                        everything=everything,
                        only_standard=only_standard,
                    )
                },
            )
        else:
            current = await self.bot.store.get_guild_settings(interaction.guild_id) or empty(interaction.guild_id)
        specs = [
            spec
            for spec in self.catalogue.values()
            if current.allowed_models is None or spec.id in current.allowed_models
        ]
        await reply_ephemeral(interaction, _("Models members may use: {models}.", models=model_list(specs)))

    @models.autocomplete("allow")
    async def _allow(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices(self.catalogue.values(), current)

    @models.autocomplete("deny")
    async def _deny(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        return model_choices(self.catalogue.values(), current)

    @app_commands.command(
        name="limits", description="Cooldown, jobs in flight and daily image quotas (0 = no quota)", extras=SAVES
    )
    @app_commands.describe(
        cooldown_seconds="Seconds between two images of one user",
        jobs_in_flight="Jobs one user may have running at once",
        images_per_user_per_day="Images one user may make per day (0 = no limit)",
        images_per_guild_per_day="Images the whole server may make per day (0 = no limit)",
    )
    async def limits(
        self,
        interaction: Interaction,
        cooldown_seconds: app_commands.Range[float, 0, 3600] | None = None,
        jobs_in_flight: app_commands.Range[int, 1, 20] | None = None,
        images_per_user_per_day: app_commands.Range[int, 0, 10000] | None = None,
        images_per_guild_per_day: app_commands.Range[int, 0, 1000000] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        changes = {
            "cooldown_seconds": cooldown_seconds, "jobs_in_flight": jobs_in_flight,
            "images_per_user_per_day": images_per_user_per_day, "images_per_guild_per_day": images_per_guild_per_day,
        }  # fmt: skip
        await self._change(interaction.guild_id, lambda current: {"limits": limits_after(current.limits, changes)})
        context = await self.bot.admission.context(interaction.guild_id, interaction.user.id)
        limits_now = describe_limits(self.bot.admission.limits(context))
        await reply_ephemeral(interaction, joined([_("Limits now:"), *limits_now]))

    @app_commands.command(
        name="budgets", description="Spending caps in US dollars, from estimated costs (0 = no budget)", extras=SAVES
    )
    @app_commands.describe(
        usd_per_user_per_day="Dollars one member may spend in 24 hours (0 = no budget)",
        usd_per_user_per_month="Dollars one member may spend in 30 days (0 = no budget)",
        usd_per_guild_per_day="Dollars the whole server may spend in 24 hours (0 = no budget)",
        usd_per_guild_per_month="Dollars the whole server may spend in 30 days (0 = no budget)",
    )
    async def budgets(
        self,
        interaction: Interaction,
        usd_per_user_per_day: app_commands.Range[float, 0, 1_000_000] | None = None,
        usd_per_user_per_month: app_commands.Range[float, 0, 1_000_000] | None = None,
        usd_per_guild_per_day: app_commands.Range[float, 0, 1_000_000] | None = None,
        usd_per_guild_per_month: app_commands.Range[float, 0, 1_000_000] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        changes = {
            "usd_per_user_per_day": usd_per_user_per_day, "usd_per_user_per_month": usd_per_user_per_month,
            "usd_per_guild_per_day": usd_per_guild_per_day, "usd_per_guild_per_month": usd_per_guild_per_month,
        }  # fmt: skip
        await self._change(interaction.guild_id, lambda current: {"limits": limits_after(current.limits, changes)})
        context = await self.bot.admission.context(interaction.guild_id, interaction.user.id)
        limits_now = describe_limits(self.bot.admission.limits(context))[-2:]
        await reply_ephemeral(interaction, joined([_("Budgets now:"), *limits_now]))

    @app_commands.command(name="usage", description="Images and estimated cost: today, 7 and 30 days")
    async def usage(self, interaction: Interaction) -> None:
        assert interaction.guild_id is not None
        now = time.time()
        periods = [
            usage.summarize(label, await self.bot.store.spend_since(interaction.guild_id, usage.since(now, days)))
            for label, days in usage.PERIODS
        ]
        report = usage.report(periods)
        if self.bot.credits is not None:  # credits are on: what was sold and spent here
            spent = await self.bot.store.credit_usage(interaction.guild_id, usage.since(now, 30))
            report = joined([report, usage.credits_report(spent)])
        await reply_ephemeral(interaction, report)

    @app_commands.command(
        name="moderation", description="Blocked words, safety settings and a log channel for jobs", extras=SAVES
    )
    @app_commands.describe(
        block="Words or phrases to refuse in prompts, separated by commas",
        unblock="Words or phrases to stop refusing, separated by commas",
        max_safety_tolerance="Most permissive safety_tolerance in age-restricted channels (2 = the default)",
        log_channel="Post a line about every job here",
        stop_logging="Stop posting jobs to the log channel",
        check_images="Check each image made (not in age-restricted channels): spoiler or withhold what is flagged",
    )
    async def moderation(
        self,
        interaction: Interaction,
        block: str | None = None,
        unblock: str | None = None,
        max_safety_tolerance: app_commands.Range[int, 1, mod.MAX_TOLERANCE] | None = None,
        log_channel: discord.TextChannel | None = None,
        stop_logging: bool = False,
        check_images: Literal["off", "spoiler", "withhold"] | None = None,
    ) -> None:
        assert interaction.guild_id is not None

        def changed_rules(current: GuildSettings) -> mod.Moderation:
            rules = mod.Moderation.of(current)
            return dataclasses.replace(
                rules,
                blocked=mod.blocked_after(rules.blocked, add=block, remove=unblock),
                max_safety_tolerance=rules.max_safety_tolerance
                if max_safety_tolerance is None
                else max_safety_tolerance,
                log_channel_id=None if stop_logging else (log_channel.id if log_channel else rules.log_channel_id),
                check_images=check_images or rules.check_images,
            )

        changed = block or unblock or max_safety_tolerance is not None or log_channel or stop_logging or check_images
        if changed:
            saved = await self._change(
                interaction.guild_id, lambda current: {"moderation": changed_rules(current).stored()}
            )
            rules = mod.Moderation.of(saved)
        else:
            rules = mod.Moderation.of(await self.bot.store.get_guild_settings(interaction.guild_id))
        await reply_ephemeral(interaction, joined([_("Moderation:"), *mod.describe(rules)]))


def _model_or_reason(need: ModelNeed, context: RequestContext) -> Text:
    """The model a feature would use here, or why there is none."""
    try:
        return verbatim(need.pick(context).split("/")[-1])
    except BadInput as exc:
        return exc.text


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Admin(bot))
