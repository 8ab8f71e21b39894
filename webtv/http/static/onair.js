// The live player and what it shows: one module for the viewer page (/) and the console.
//
// The HLS output stamps every segment with EXT-X-PROGRAM-DATE-TIME (its start time plus the
// stream time since), and /api/programme gives the clips aired lately with their times on the
// stream's clock (`stream_start`, `stream_end`: the first block's start plus stream time, so
// the dates keep one lead over them, where the Unix `start` falls behind the stream after every
// skip). The clip the viewer sees is the one whose [stream_start, stream_end) holds the date of
// the picture on screen (hls.js `playingDate`, less the dates' lead: see dateLead), not the one
// the server airs now: a player runs a few segments behind.

export const SOURCE = "hls/index.m3u8";

const startOf = (entry) => entry.stream_start ?? entry.start;  // a daemon from before stream times
const endOf = (entry) => entry.stream_end ?? entry.end;

// A player for a page left open all day: bounded back buffer, near the live edge, and back
// from every fatal error instead of freezing. `onState(text)` hears what it is doing.
export function startPlayer(video, onState = () => {}) {
  const player = { hls: null };
  let restartTimer = null;

  function retry(why) {
    onState(why + " — retrying");
    clearTimeout(restartTimer);
    restartTimer = setTimeout(start, 3000);
  }

  function start() {
    if (player.hls) { player.hls.destroy(); player.hls = null; }
    if (window.Hls && Hls.isSupported()) {
      const hls = new Hls({
        backBufferLength: 30,
        maxBufferLength: 20,
        liveSyncDurationCount: 3,
        liveMaxLatencyDurationCount: 8,
        maxLiveSyncPlaybackRate: 1.1,
        manifestLoadingMaxRetry: 6,
        levelLoadingMaxRetry: 6,
        fragLoadingMaxRetry: 6,
        enableWorker: true,
      });
      hls.on(Hls.Events.MANIFEST_PARSED, () => { onState("live"); video.play().catch(() => {}); });
      hls.on(Hls.Events.ERROR, (event, data) => {
        if (!data.fatal) return;
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
          onState("recovering media error");
          hls.recoverMediaError();
        } else {
          retry(data.type === Hls.ErrorTypes.NETWORK_ERROR ? "stream unreachable" : "player error");
        }
      });
      hls.loadSource(SOURCE);
      hls.attachMedia(video);
      player.hls = hls;
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = SOURCE;
      video.addEventListener("loadedmetadata", () => { onState("live"); video.play().catch(() => {}); }, { once: true });
    } else {
      onState("this browser cannot play HLS");
    }
  }

  video.addEventListener("error", () => retry("video error"));
  video.addEventListener("stalled", () => onState("buffering…"));
  video.addEventListener("playing", () => onState("live"));
  start();
  return player;
}

// The wall-clock date (ms) of the picture on screen, or null when the stream carries none.
export function playingDate(player, video) {
  const date = player.hls ? player.hls.playingDate : null;
  if (date) return date.getTime();
  if (video.getStartDate) {  // Safari's own HLS
    const start = video.getStartDate().getTime();
    if (!isNaN(start)) return start + video.currentTime * 1000;
  }
  return null;
}

// How far the stream's program dates run ahead of the clips' start times, in seconds. ffmpeg
// stamps the dates from the moment its muxer started, a little after the first bytes it was
// given (the input probe; up to a GOP more after an output restart, which begins with the last
// GOP): a constant lead per HLS process. Every segment opens on a keyframe, and a clip has
// keyframes at its start and every `keyframeS` after (the house GOP), so the lead is the shift
// that puts the most segment dates on keyframes of the clips aired. The candidates are the
// gaps between a date and a clip's start (never negative but for rounding: from -0.1 s); among
// shifts that fit as many dates, the smallest. The gap to the nearest date alone misleads:
// clips of 3 s with a 2 s GOP open a segment only every other clip (the muxer cuts at the
// first keyframe past each multiple of the segment time), and after a skip or a ban the segment
// holding the cut runs on past the next clip's start. Without `keyframeS` (a daemon from before
// it) only clip starts count as keyframes.
export function dateLead(player, entries, keyframeS = null) {
  const details = player.hls ? player.hls.latestLevelDetails : null;
  if (!details || !details.fragments) return 0;
  const dates = details.fragments.map((f) => f.programDateTime).filter((ms) => ms).map((ms) => ms / 1000);
  if (!dates.length) return 0;
  const span = details.targetduration || 2;
  const earliest = Math.min(...dates) - span - 0.5;
  const latest = Math.max(...dates) + 0.25;
  const near = entries.filter((entry) => endOf(entry) > earliest && startOf(entry) < latest);
  let lead = 0;
  let fitted = 0;
  for (const entry of near) {
    for (const date of dates) {
      const gap = date - startOf(entry);
      if (gap <= -0.1 || gap >= span + 0.5) continue;
      const fits = dates.filter((other) => onKeyframe(other - gap, near, keyframeS)).length;
      if (fits > fitted || (fits === fitted && gap < lead)) [lead, fitted] = [gap, fits];
    }
  }
  return lead;
}

const KEYFRAME_TOLERANCE_S = 0.05;

function onKeyframe(t, entries, every) {
  return entries.some((entry) => {
    const since = t - startOf(entry);
    if (since < -KEYFRAME_TOLERANCE_S || t >= endOf(entry) - KEYFRAME_TOLERANCE_S) return false;
    const nearest = every ? Math.round(since / every) * every : 0;
    return Math.abs(since - nearest) < KEYFRAME_TOLERANCE_S;
  });
}

// The programme entry holding `dateMs` (start <= date < end, on the stream's clock).
export function entryAt(entries, dateMs) {
  const t = dateMs / 1000;
  let found = null;
  for (const entry of entries) {
    if (startOf(entry) <= t && (found === null || startOf(entry) >= startOf(found))) found = entry;
  }
  return found && t < endOf(found) + 1 ? found : null;
}

// Calls `onClip(entry, dateMs)` whenever the clip on screen changes (entry: a /api/programme
// entry, or null when unknown; dateMs: the picture's corrected date, null without dates). Reads /api/programme every few seconds, and sooner when the picture
// runs past what it knows. Without program dates it names the server's clip on air.
export function followPicture(player, video, onClip, { everyMs = 4000 } = {}) {
  let entries = [];
  let now = null;
  let keyframeS = null;
  let shown;
  let leadOf = { details: undefined, entries: undefined, lead: 0 };  // dateLead per playlist and programme
  let fetchedAt = 0;
  let loading = false;

  async function load() {
    if (loading) return;
    loading = true;
    fetchedAt = Date.now();
    try {
      const response = await fetch("api/programme", { cache: "no-store" });
      if (response.ok) {
        const programme = await response.json();
        now = programme.now || null;
        entries = [...(programme.recent || []), ...(now ? [now] : [])];
        keyframeS = programme.keyframe_s || null;
        update();
      }
    } catch (err) {
      /* the daemon restarting: the next round tries again */
    } finally {
      loading = false;
    }
  }

  function lead() {
    const details = player.hls ? player.hls.latestLevelDetails : null;
    if (details !== leadOf.details || entries !== leadOf.entries) {
      leadOf = { details, entries, lead: dateLead(player, entries, keyframeS) };
    }
    return leadOf.lead;
  }

  function update() {
    const stamped = playingDate(player, video);
    const date = stamped === null ? null : stamped - 1000 * lead();
    let entry = date === null ? now : entryAt(entries, date);
    const last = entries.length ? entries[entries.length - 1] : null;
    if (date !== null && last && date / 1000 >= endOf(last) && Date.now() - fetchedAt > 500) load();
    if (date !== null && entry === null) entry = undefined;  // not known yet: keep what is shown
    if (entry === undefined) return;
    const key = entry ? `${entry.block}:${startOf(entry)}:${entry.clip_id}` : "";
    if (key !== shown) {
      shown = key;
      onClip(entry, date);
    }
  }

  // Every frame shown where the browser tells (requestVideoFrameCallback), else at timeupdate (4 Hz).
  if (video.requestVideoFrameCallback) {
    const onFrame = () => { update(); video.requestVideoFrameCallback(onFrame); };
    video.requestVideoFrameCallback(onFrame);
  } else {
    video.addEventListener("timeupdate", update);
  }
  load();
  setInterval(load, everyMs);
  return { update, entries: () => entries, lead };
}
