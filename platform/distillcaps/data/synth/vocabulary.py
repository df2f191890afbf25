"""Words for each event class: (subject, verb, -ing form) phrasings and background noun phrases.

Subject and verb agree within a phrasing ("birds chirp", "a bird chirps"). Every phrasing names
its class with a word no other class uses (dog, bell, phone, typing ...), so captions can be
checked against the scene.
"""

from __future__ import annotations

Phrasing = tuple[str, str, str]  # subject, verb (3rd person present), verb -ing

PHRASINGS: dict[str, list[Phrasing]] = {
    "dog_bark": [("a dog", "barks", "barking"), ("a dog", "yaps", "yapping")],
    "knocking": [
        ("someone", "knocks", "knocking"),
        ("someone", "knocks on a door", "knocking on a door"),
        ("a person", "knocks on wood", "knocking on wood"),
    ],
    "bell": [("a bell", "rings", "ringing"), ("a bell", "chimes", "chiming"), ("a bell", "tolls", "tolling")],
    "alarm_beep": [
        ("an alarm", "beeps", "beeping"),
        ("an electronic alarm", "beeps", "beeping"),
        ("a device", "beeps", "beeping"),
    ],
    "car_horn": [
        ("a car horn", "honks", "honking"),
        ("a car", "honks its horn", "honking its horn"),
        ("a horn", "blares", "blaring"),
    ],
    "phone_ring": [
        ("a phone", "rings", "ringing"),
        ("a telephone", "rings", "ringing"),
        ("a phone", "trills", "trilling"),
    ],
    "bird_chirp": [
        ("a bird", "chirps", "chirping"),
        ("birds", "chirp", "chirping"),
        ("birds", "tweet", "tweeting"),
        ("a bird", "sings", "singing"),
    ],
    "rain": [
        ("rain", "falls", "falling"),
        ("rain", "pours down", "pouring down"),
        ("rain", "patters", "pattering"),
    ],
    "wind": [("wind", "blows", "blowing"), ("the wind", "howls", "howling"), ("wind", "gusts", "gusting")],
    "engine_hum": [
        ("an engine", "hums", "humming"),
        ("an engine", "idles", "idling"),
        ("a motor", "drones", "droning"),
        ("a vehicle engine", "rumbles", "rumbling"),
    ],
    "siren": [
        ("a siren", "wails", "wailing"),
        ("a siren", "sounds", "sounding"),
        ("an emergency siren", "blares", "blaring"),
    ],
    "footsteps": [
        ("someone", "walks", "walking"),
        ("a person", "walks", "walking"),
        ("footsteps", "sound", "sounding"),
    ],
    "flowing_water": [
        ("water", "flows", "flowing"),
        ("water", "runs", "running"),
        ("a stream of water", "trickles", "trickling"),
    ],
    "clapping": [
        ("someone", "claps", "clapping"),
        ("a person", "claps their hands", "clapping their hands"),
        ("an audience", "applauds", "applauding"),
    ],
    "speech_babble": [
        ("people", "talk", "talking"),
        ("people", "chatter", "chattering"),
        ("a crowd", "murmurs", "murmuring"),
    ],
    "thunder": [
        ("thunder", "rumbles", "rumbling"),
        ("thunder", "roars", "roaring"),
        ("thunder", "crashes", "crashing"),
    ],
    "typing": [
        ("someone", "types on a keyboard", "typing on a keyboard"),
        ("a person", "types", "typing"),
        ("keyboard keys", "clatter", "clattering"),
    ],
    "crickets": [
        ("crickets", "chirp", "chirping"),
        ("crickets", "trill", "trilling"),
        ("a cricket", "chirps", "chirping"),
    ],
}

# Noun phrases for a class that fills the background ("... with rain falling in the background").
BACKGROUND_NOUNS: dict[str, list[str]] = {
    "rain": ["rain falling", "steady rain", "pattering rain"],
    "wind": ["wind blowing", "gusting wind", "the howling wind"],
    "engine_hum": ["an engine humming", "a droning motor", "engine noise"],
    "flowing_water": ["running water", "water flowing", "trickling water"],
    "speech_babble": ["people talking", "crowd chatter", "murmuring voices"],
    "typing": ["typing on a keyboard", "keyboard clicks", "someone typing"],
    "crickets": ["crickets chirping", "chirping crickets", "a chorus of crickets"],
}

COUNT_WORDS: dict[str, list[str]] = {
    "one": ["once", "a single time"],
    "two": ["twice", "two times"],
    "several": ["several times", "repeatedly", "multiple times", "a few times"],
}

LOUDNESS_ADVERBS: dict[str, list[str]] = {
    "faint": ["faintly", "faintly", "softly", "quietly"],
    "loud": ["loudly"],
}


def count_key(count: int) -> str:
    return "one" if count == 1 else "two" if count == 2 else "several"
