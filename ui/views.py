"""Persistent buttons: the job id is in the custom id, so they keep working after a restart."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, cast

import discord

from cogs.edit import image_refs
from services.store.models import ACTIVE
from ui.errors import reply_ephemeral

if TYPE_CHECKING:
    from bot import FluxBot
    from cogs.edit import Edit
    from cogs.imagine import Imagine

log = logging.getLogger(__name__)

JOB_ID = r"(?P<job>[0-9a-f]{32})"


class CancelButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"flux:cancel:{JOB_ID}"):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id=f"flux:cancel:{job_id}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        bot = cast("FluxBot", interaction.client)
        job = await bot.store.get_job(self.job_id)
        if job is None:
            await reply_ephemeral(interaction, "That image job no longer exists.")
            return
        moderator = interaction.permissions.manage_messages
        if interaction.user.id != job.user_id and not moderator:
            await reply_ephemeral(
                interaction, "Only the person who asked for this image (or a moderator) can cancel it."
            )
            return
        if job.status not in ACTIVE:
            await reply_ephemeral(interaction, "This job has already finished.")
            return
        await interaction.response.defer()
        if not await bot.runner.cancel(job.id):
            # Not running in this process (another shard's, or from before a restart): stop it here.
            await bot.runner.cancel_elsewhere(job)


class RerollButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"flux:reroll:{JOB_ID}"):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Reroll", emoji="🔄", style=discord.ButtonStyle.secondary, custom_id=f"flux:reroll:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RerollButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        imagine = cast("Imagine", interaction.client.get_cog("Imagine"))
        await imagine.reroll_from_button(interaction, self.job_id)


class EditButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"flux:edit:{JOB_ID}"):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Edit", emoji="✏️", style=discord.ButtonStyle.secondary, custom_id=f"flux:edit:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> EditButton:
        return cls(match["job"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        bot = cast("FluxBot", interaction.client)
        edit = cast("Edit", bot.get_cog("Edit"))
        parent = await bot.store.get_job(self.job_id)
        images = image_refs(interaction.message) if interaction.message is not None else []
        await edit.open(interaction, images, parent)


def progress_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def result_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job_id))
    view.add_item(EditButton(job_id))
    return view


DYNAMIC_ITEMS = (CancelButton, RerollButton, EditButton)
