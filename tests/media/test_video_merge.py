"""The merge engine on small real clips made with ffmpeg in the test run: which way each set is
joined, and what comes out, checked by probing the result and decoding its frames."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import pytest

from media.video_merge import MergeFailed, can_stream_copy, merge, probe_clips
from media.video_probe import ProbeFailed, ffmpeg_exe, probe
from tests.support.clips import audio_seconds, clip, dominant, frame, is_black, last_frame, mean_colour


def _merged(tmp_path: Path, paths: list[Path]) -> tuple[str, Path]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    out = tmp_path / "merged.mp4"
    plan = merge(probe_clips(paths), out, work)
    return plan.mode, out


def test_clips_from_one_phone_are_joined_without_re_encoding_and_start_playing_at_once(tmp_path):
    paths = [clip(tmp_path, size="320x180", seconds=1) for _ in range(3)]
    mode, out = _merged(tmp_path, paths)
    assert mode == "copy"
    merged = probe(out)
    assert (merged.video_codec, merged.display_size, merged.fps) == ("h264", (320, 180), Fraction(30))
    assert merged.audio_codec == "aac" and merged.has_audio
    assert abs(merged.duration - 3.0) < 0.15
    assert abs(audio_seconds(out, tmp_path) - 3.0) < 0.15
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "+faststart: the index comes before the media"
    assert not is_black(mean_colour(last_frame(out, tmp_path), 0.2, 0.2, 0.8, 0.8)), "the last frame decodes to a picture"


def test_a_stream_copy_keeps_the_rotation_every_clip_shares(tmp_path):
    paths = [clip(tmp_path, size="320x180", rotation=90, two_colours=True) for _ in range(2)]
    mode, out = _merged(tmp_path, paths)
    assert mode == "copy"
    merged = probe(out)
    assert merged.display_size == (180, 320), "portrait, as the phone showed it"
    source = frame(paths[0], 0.5, tmp_path)
    result = last_frame(out, tmp_path)
    for region in ((0, 0, 0.5, 1), (0.5, 0, 1, 1)):
        assert dominant(mean_colour(result, *region)) == dominant(mean_colour(source, *region)) != "other"


def test_clips_that_differ_only_by_their_rotation_tag_are_not_stream_copied(tmp_path):
    plain = clip(tmp_path, size="320x180", two_colours=True)
    turned = clip(tmp_path, size="320x180", two_colours=True, rotation=90)
    clips = probe_clips([plain, turned])
    assert clips[0].copy_signature() != clips[1].copy_signature()
    assert not can_stream_copy(clips), "a copy would play the second clip sideways"


def test_portrait_and_landscape_are_letterboxed_into_one_frame_never_stretched(tmp_path):
    landscape = clip(tmp_path, size="320x180", two_colours=True)
    portrait = clip(tmp_path, size="180x320", two_colours=True)
    mode, out = _merged(tmp_path, [landscape, portrait])
    assert mode == "encode"
    merged = probe(out)
    assert merged.display_size == (320, 180) and merged.rotation == 0
    picture = last_frame(out, tmp_path)  # the portrait clip, fitted into the landscape frame
    assert is_black(mean_colour(picture, 0.0, 0.1, 0.25, 0.9)) and is_black(mean_colour(picture, 0.75, 0.1, 1.0, 0.9))
    # Not stretched: the portrait picture keeps its proportions, red above blue, in the middle.
    assert dominant(mean_colour(picture, 0.45, 0.05, 0.55, 0.45)) == "red"
    assert dominant(mean_colour(picture, 0.45, 0.55, 0.55, 0.95)) == "blue"
    first = frame(out, 0.3, tmp_path)
    assert dominant(mean_colour(first, 0.05, 0.05, 0.95, 0.45)) == "red", "the landscape clip fills the frame"


def test_a_rotation_tag_is_honoured_the_way_a_phone_shows_the_clip(tmp_path):
    """An iPhone stores portrait video as landscape pixels plus a rotation; the result must show
    it upright, as a player shows the source, and carry no rotation of its own."""
    turned = clip(tmp_path, size="320x180", two_colours=True, rotation=90)
    portrait = clip(tmp_path, size="180x320", fps=24, two_colours=True)
    assert probe(turned).display_size == (180, 320)
    mode, out = _merged(tmp_path, [turned, portrait])
    assert mode == "encode"
    merged = probe(out)
    assert merged.display_size == (180, 320) and merged.rotation == 0
    shown = frame(turned, 0.5, tmp_path)  # as a player shows the source (ffmpeg turns it)
    result = frame(out, 0.5, tmp_path)
    left, right = (0.05, 0.05, 0.45, 0.95), (0.55, 0.05, 0.95, 0.95)
    assert dominant(mean_colour(shown, *left)) != dominant(mean_colour(shown, *right)), "the source is split left/right"
    for region in (left, right):
        assert dominant(mean_colour(result, *region)) == dominant(mean_colour(shown, *region))


def test_portrait_video_stored_as_an_iphone_stores_it_comes_out_upright(tmp_path):
    """Landscape pixels on their side plus a matrix: red must end up on top, blue below, whichever
    way the set is joined."""
    iphone = clip(tmp_path, size="180x320", two_colours=True, iphone_portrait=True)
    described = probe(iphone)
    assert (described.width, described.height, described.display_size) == (320, 180, (180, 320))
    for partner in (clip(tmp_path, size="180x320", two_colours=True, iphone_portrait=True), clip(tmp_path, size="180x320")):
        mode, out = _merged(tmp_path, [iphone, partner])
        picture = frame(out, 0.5, tmp_path)
        assert probe(out).display_size == (180, 320), mode
        assert dominant(mean_colour(picture, 0.1, 0.05, 0.9, 0.4)) == "red", mode
        assert dominant(mean_colour(picture, 0.1, 0.6, 0.9, 0.95)) == "blue", mode
        (tmp_path / "merged.mp4").unlink()


def test_a_clip_without_audio_gets_silence_so_the_sound_stays_in_sync(tmp_path):
    paths = [clip(tmp_path, seconds=1), clip(tmp_path, seconds=1.5, audio=False), clip(tmp_path, seconds=1)]
    clips = probe_clips(paths)
    assert [c.has_audio for c in clips] == [True, False, True]
    assert not can_stream_copy(clips)
    mode, out = _merged(tmp_path, paths)
    merged = probe(out)
    assert mode == "encode" and merged.has_audio and merged.audio_codec == "aac"
    assert abs(merged.duration - 3.5) < 0.15
    assert abs(audio_seconds(out, tmp_path) - merged.duration) < 0.1, "audio as long as the picture"


def test_clips_at_other_frame_rates_are_brought_to_one(tmp_path):
    paths = [clip(tmp_path, fps=30), clip(tmp_path, fps=24), clip(tmp_path, fps=60)]
    assert not can_stream_copy(probe_clips(paths))
    mode, out = _merged(tmp_path, paths)
    merged = probe(out)
    assert mode == "encode" and merged.fps == Fraction(30)
    assert abs(merged.duration - 3.0) < 0.15


def test_hevc_in_a_mov_comes_out_as_h264_and_aac_in_mp4(tmp_path):
    hevc = clip(tmp_path, codec="libx265", container="mov")
    mode, out = _merged(tmp_path, [hevc, clip(tmp_path)])
    merged = probe(out)
    assert mode == "encode"
    assert (merged.video_codec, merged.pix_fmt, merged.audio_codec) == ("h264", "yuv420p", "aac")
    assert out.read_bytes()[4:8] == b"ftyp"


def test_ten_bit_hdr_hevc_is_tone_mapped_to_eight_bit_h264(tmp_path):
    hdr = clip(tmp_path, codec="libx265", container="mov", hdr=True, two_colours=True)
    described = probe(hdr)
    assert described.hdr and "10" in described.pix_fmt
    assert not can_stream_copy(probe_clips([hdr, hdr]))
    mode, out = _merged(tmp_path, [hdr, clip(tmp_path, two_colours=True)])
    merged = probe(out)
    assert mode == "encode" and (merged.video_codec, merged.pix_fmt, merged.hdr) == ("h264", "yuv420p", False)
    picture = frame(out, 0.5, tmp_path)
    assert (
        dominant(mean_colour(picture, 0.1, 0.05, 0.9, 0.4)) == "red"
        and dominant(mean_colour(picture, 0.1, 0.6, 0.9, 0.95)) == "blue"
    )


def test_the_recording_time_is_read_from_the_clip(tmp_path):
    dated = clip(tmp_path, created="2026-11-30T14:05:09.000000Z")
    assert probe(dated).created_at == datetime(2026, 11, 30, 14, 5, 9, tzinfo=timezone.utc)
    assert probe(clip(tmp_path)).created_at is None


def test_a_file_that_is_not_a_video_is_named_by_its_place(tmp_path):
    photo = tmp_path / "photo.mp4"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not a video at all")
    with pytest.raises(MergeFailed) as failed:
        probe_clips([clip(tmp_path), photo])
    assert (failed.value.code, failed.value.clip) == ("not_video", 1)


def test_a_truncated_clip_is_refused_and_nothing_is_written(tmp_path):
    whole = clip(tmp_path, seconds=2)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # the index (at the end) is lost
    with pytest.raises(MergeFailed) as failed:
        probe_clips([whole, whole, cut])
    assert failed.value.clip == 2 and failed.value.code == "not_video"


@pytest.mark.parametrize("other_fps", [30, 24], ids=["stream-copy", "re-encode"])
def test_a_clip_cut_after_its_index_fails_the_merge_naming_it_and_leaves_no_output(tmp_path, other_fps):
    """The index at the front (+faststart) but the media cut short: the clip looks whole and ffmpeg
    exits 0 (it would freeze on the last good frame); what it prints gives the clip away."""
    indexed = tmp_path / "indexed.mp4"
    source = clip(tmp_path, seconds=3, fps=30)
    command = [ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(source), "-c", "copy", "-movflags", "+faststart"]
    subprocess.run([*command, str(indexed)], check=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(indexed.read_bytes()[: indexed.stat().st_size // 3])
    clips = probe_clips([clip(tmp_path, seconds=3, fps=other_fps), cut, clip(tmp_path, seconds=3, fps=other_fps)])
    assert abs(clips[1].duration - 3.0) < 0.1, "the cut clip's index still says 3 s"
    out, work = tmp_path / "merged.mp4", tmp_path / "work"
    work.mkdir()
    with pytest.raises(MergeFailed) as failed:
        merge(clips, out, work)
    assert (failed.value.code, failed.value.clip) == ("unreadable", 1)
    assert not out.exists()


def test_a_single_clip_is_not_a_merge(tmp_path):
    with pytest.raises(MergeFailed) as failed:
        merge(probe_clips([clip(tmp_path)]), tmp_path / "out.mp4", tmp_path)
    assert failed.value.code == "too_few"


def test_probe_refuses_an_empty_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ProbeFailed):
        probe(empty)
