"""The bot in the user's language, through the real discord.py against the fake Discord.

Private answers follow the user's client language (`locale`); a job's message, seen by the whole channel,
follows the server's (`guild_locale`). Commands carry their Indonesian descriptions from the Translator.
"""

from __future__ import annotations

from cli.harness import wait_status
from fakes.discord_interactions import find_component
from services.jobs.runner import JobProgress
from services.locales import catalogues
from services.text import _
from tests.card import card
from tests.helpers import EPHEMERAL, job_shown_in, make_job, private_reply, started_job
from ui.render import progress_text


def indonesian(msgid: str) -> str:
    translated = catalogues().render(_(msgid), "id")
    assert translated != msgid, f"no Indonesian for {msgid!r}"
    return translated


def server(world, *, locale="en-US", permissions=None):
    d = world.discord
    guild = d.add_guild("klub seni", locale=locale)
    channel = d.add_channel(guild, "gambar")
    budi = d.add_user("budi")
    d.add_member(guild, budi, permissions=permissions)
    return guild, channel, budi


def label(message, custom_id: str) -> str:
    button = find_component(message.components, custom_id)
    assert button is not None, custom_id
    return str(button["label"])


def option(command, name):
    return next(o for o in command["options"] if o["name"] == name)


async def test_registered_commands_carry_their_indonesian_descriptions(world):
    async with world.bot():
        imagine = world.discord.command("imagine")
        menu = world.discord.command("Edit with FLUX", command_type=3)
        settings = world.discord.command("imagine-settings")
    assert imagine["description_localizations"]["id"] == "Buat gambar dengan FLUX"
    assert option(imagine, "prompt")["description_localizations"]["id"] == "Apa yang akan digambar"
    assert all("id" in o["description_localizations"] for o in imagine["options"])
    # Names stay English (interactions carry them, and slash names are single lowercase words) ...
    assert not imagine.get("name_localizations")
    # ... except the free-text name of the message menu.
    assert menu["name_localizations"]["id"] == "Sunting dengan FLUX"
    show = option(settings, "show")
    assert show["description_localizations"]["id"] == indonesian("This server's settings and where each comes from")
    # English is the default: no catalogue for it, nothing sent for en-US.
    assert "en-US" not in imagine["description_localizations"]


def options_of(command):
    """Every option of a command, its subcommands' included, as (path, option)."""
    for option in command.get("options", []):
        if option["type"] in (1, 2):  # a subcommand or a group: its own options
            for path, inner in options_of(option):
                yield f"{option['name']} {path}", inner
        else:
            yield option["name"], option


async def test_every_option_of_every_command_is_described_in_english_and_indonesian(world):
    async with world.bot():
        commands = [c for c in world.discord.global_commands if c.get("type", 1) == 1]
    # Discord's picker shows an option's description under its name; discord.py sends "…" when none is given.
    undescribed = [
        f"/{command['name']} {path}"
        for command in commands
        for path, option in options_of(command)
        if option["description"] in ("…", "") or "id" not in (option.get("description_localizations") or {})
    ]
    assert {c["name"] for c in commands} >= {"imagine", "imagine-prefs", "imagine-settings"}
    assert not undescribed, undescribed


async def test_a_mistake_is_explained_in_the_users_language(world):
    guild, channel, budi = server(world)
    async with world.bot() as bot:
        handle = await world.discord.slash_command(guild, channel, budi, "imagine", {"prompt": "   "}, locale="id")
        reply = await private_reply(world, handle)
        assert await bot.store.count_jobs(user_id=budi.id) == 0
    assert reply.flags & EPHEMERAL
    assert reply.text == indonesian("The prompt is empty: describe the image you want.")


async def test_a_job_message_is_in_the_servers_language_and_private_answers_in_the_users(world):
    guild, channel, budi = server(world, locale="id")
    async with world.bot() as bot:
        # Budi's client is in English; the server's language is Indonesian: the public job message follows it.
        handle = await world.discord.slash_command(guild, channel, budi, "imagine", {"prompt": "kucing"})
        job, _message = await started_job(world, bot, handle)
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await wait_status(bot, job.id, "succeeded", "failed")
        # The Edit button opens a form for Budi alone: in his client's language.
        edit = await world.discord.click_button(final.id, f"flux:edit:{job.id}", budi, locale="id")
        await edit.wait_response()
        english = await world.discord.click_button(final.id, f"flux:edit:{job.id}", budi, locale="en-US")
        await english.wait_response()
    assert job.status == "succeeded" and job.locale == "id"
    progress = [text for text in final.lines_shown if text]
    assert any(indonesian("Starting") in line or indonesian("Generating") in line for line in progress), progress
    assert card(final).facts[-1] == f"<@{budi.id}>"
    assert label(final, f"flux:reroll:{job.id}") == indonesian("Reroll")
    assert label(final, f"flux:edit:{job.id}") == indonesian("Edit")
    assert edit.modal["title"] == "Sunting dengan FLUX"
    assert english.modal["title"] == "Edit with FLUX"


async def test_an_english_server_keeps_english_job_messages_for_an_indonesian_user(world):
    guild, channel, budi = server(world)
    async with world.bot() as bot:
        handle = await world.discord.slash_command(guild, channel, budi, "imagine", {"prompt": "kucing"}, locale="id")
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await job_shown_in(bot, final.id)
    assert job.locale == "en-US"
    assert label(final, f"flux:reroll:{job.id}") == "Reroll"


async def test_settings_answer_an_admin_in_their_language(world):
    guild, channel, budi = server(world, permissions=["manage_guild"])
    async with world.bot():
        handle = await world.discord.slash_command(guild, channel, budi, "imagine-settings show", {}, locale="id")
        reply = await private_reply(world, handle)
        refused = await world.discord.slash_command(
            guild, channel, budi, "imagine-settings limits", {"jobs_in_flight": 1, "cooldown_seconds": 5}, locale="id"
        )
        limits = await private_reply(world, refused)
    assert reply.flags & EPHEMERAL
    assert "**Model yang diizinkan**:" in reply.text
    assert "bawaan bot" in reply.text  # where each value comes from
    assert limits.text.startswith(indonesian("Limits now:"))
    assert "Jeda antar gambar seorang pengguna: 5 detik" in limits.text


async def test_moderation_usage_and_the_job_log_speak_indonesian(world):
    """The texts of the budgets/moderation feature come from the catalogue too: the settings reply, a refusal,
    a prompt parameter's refusal, the job log line (the job's language) and the usage report."""
    guild, channel, budi = server(world, locale="id", permissions=["manage_guild"])
    log_channel = world.discord.add_channel(guild, "log")

    async def private(command: str, options: dict[str, object]) -> str:
        handle = await world.discord.slash_command(guild, channel, budi, command, options, locale="id")
        reply = await private_reply(world, handle)
        assert reply.flags & EPHEMERAL, reply.text
        return str(reply.text)

    async with world.bot() as bot:
        rules = await private("imagine-settings moderation", {"block": "rubah", "log_channel": log_channel.id})
        blocked = await private("imagine", {"prompt": "seekor Rubah di salju"})
        negative = await private("imagine", {"prompt": "pantai --no orang"})
        handle = await world.discord.slash_command(guild, channel, budi, "imagine", {"prompt": "kucing"}, locale="id")
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
        [line] = await world.discord.wait_for(
            lambda: world.discord.messages_in(log_channel) or None, timeout=5, what="the log line"
        )
        usage = await private("imagine-settings usage", {})
    assert rules.startswith("Moderasi:\n")
    assert 'Kata dan frasa yang diblokir: "rubah"' in rules
    assert f"Kanal log tugas: <#{log_channel.id}>" in rules
    assert "Pemeriksa keamanan boleh dimatikan: tidak pernah" in rules
    assert blocked == 'Server ini tidak mengizinkan "rubah" dalam prompt; ubah prompt lalu coba lagi.'
    assert negative.startswith("FLUX tidak menerima prompt negatif")
    assert job.locale == "id"
    assert " · sekitar $0.003 · " in line.text, line.text
    assert usage.startswith("**Hari ini (24 jam)**: 1 gambar, sekitar $0.003"), usage
    assert f"Anggota teratas: <@{budi.id}> 1 gambar $0.003" in usage
    assert usage.endswith(indonesian(USAGE_FOOTNOTE))


USAGE_FOOTNOTE = "Costs are estimates from the list prices; failed and cancelled jobs are not counted."


def test_the_usual_time_on_a_progress_line_is_in_the_jobs_language():
    job = make_job(locale="id", input={"prompt": "kucing"})
    usual = progress_text(job, JobProgress("generating", 12, usual=(7, 35)))
    late = progress_text(job, JobProgress("generating", 50, usual=(7, 35), overdue=True))
    # One unit on the line: the elapsed time's "s", not "12 s (biasanya 7–35 detik)".
    assert "12 s (biasanya 7–35 s)" in usual, usual
    assert "50 s (lebih lama dari biasanya, 7–35 s)" in late, late
    assert "detik" not in usual + late
