"""Sample sources for the syntax tests, one per grammar folder.

Each sample holds imports, a comment above a definition, a call split over two
lines (its second line starts with ``b)``, a place no window may start), an
``if`` block, a string and a second definition below. ``█`` marks a cursor on
an empty line of the first function's body.
"""

from __future__ import annotations

CURSOR = "█"


def split_cursor(text: str) -> tuple[bytes, int]:
    """The text without its cursor marker, and the marker's byte offset."""
    index = text.index(CURSOR)
    before = text[:index].encode()
    return before + text[index + len(CURSOR) :].encode(), len(before)


SAMPLES: dict[str, str] = {
    "python": '''\
import os
from collections import abc as c, defaultdict
from . import sibling
from ..pkg.mod import thing


# Adds two numbers.
@decorator
def total(a, b):
    """Doc."""
    x = add(a,
            b)
    if x > 0:
        print(x)
    █
    s = f"v={x}"
    return len(s)


class Point:
    def norm(self):
        return 0
''',
    "javascript": """\
import { a, b as c } from "./mod";
import * as fs from "fs";
const old = require("old");

// Adds two numbers.
function total(a, b) {
  const x = add(a,
    b);
  if (x > 0) {
    console.log(x);
  }
  █
  const s = `v=${x}`;
  return s.length;
}

class Point {
  norm() {
    return 0;
  }
}
""",
    "typescript": """\
import { a, b as c } from "./mod";
import * as fs from "fs";
import def from 'pkg';

// Adds two numbers.
export function total(a: number, b: number): number {
  const x = add(a,
    b);
  if (x > 0) {
    console.log(x);
  }
  █
  const s = `v=${x}`;
  return s.length;
}

interface Shape {
  area(): number;
}
""",
    "tsx": """\
import React from "react";
import { useState } from "react";

// Shows a counter.
export function App(props: { name: string }): JSX.Element {
  const x = add(props.a,
    b);
  if (x > 0) {
    console.log(x);
  }
  █
  const s = `v=${x}`;
  return <span className="x">{s}</span>;
}

export function Other() {
  return <div />;
}
""",
    "go": """\
package main

import (
\t"fmt"
\tstr "strings"
)

// Total adds two numbers.
func Total(a int, b int) int {
\tx := add(a,
\t\tb)
\tif x > 0 {
\t\tfmt.Println(x)
\t}
\t█
\ts := fmt.Sprintf("v=%d", x)
\treturn len(s)
}

type Point struct {
\tX int
}
""",
    "java": """\
package com.example;

import java.util.List;
import java.io.*;

public class Calc {
    // Adds two numbers.
    public int total(int a, int b) {
        int x = add(a,
            b);
        if (x > 0) {
            System.out.println(x);
        }
        █
        String s = "v=" + x;
        return s.length();
    }

    public int norm() {
        return 0;
    }
}
""",
    "c": """\
#include <stdio.h>
#include "local.h"

/* Adds two numbers. */
int total(int a, int b) {
    int x = add(a,
        b);
    if (x > 0) {
        printf("%d\\n", x);
    }
    █
    char *s = "v=";
    return x;
}

struct point {
    int x;
};
""",
    "cpp": """\
#include <vector>
#include "local.hpp"

namespace calc {

// Adds two numbers.
int total(int a, int b) {
    int x = add(a,
        b);
    if (x > 0) {
        std::printf("%d\\n", x);
    }
    █
    std::string s = "v=";
    return x;
}

class Point {
    int norm() { return 0; }
};

}  // namespace calc
""",
    "csharp": """\
using System;
using System.Collections.Generic;

namespace Calc
{
    public class Calculator
    {
        // Adds two numbers.
        public int Total(int a, int b)
        {
            var x = Add(a,
                b);
            if (x > 0)
            {
                Console.WriteLine(x);
            }
            █
            var s = $"v={x}";
            return s.Length;
        }

        public int Norm()
        {
            return 0;
        }
    }
}
""",
    "kotlin": """\
package com.example

import kotlin.math.max
import java.util.*

// Adds two numbers.
fun total(a: Int, b: Int): Int {
    val x = add(a,
        b)
    if (x > 0) {
        println(x)
    }
    █
    val s = "v=${x}"
    return s.length
}

class Point(val x: Int) {
    fun norm(): Int {
        return 0
    }
}
""",
    "rust": """\
use std::collections::HashMap;
use std::io::{self, Read};

/// Adds two numbers.
#[inline]
fn total(a: i32, b: i32) -> i32 {
    let x = add(a,
        b);
    if x > 0 {
        println!("{}", x);
    }
    █
    let s = format!("v={}", x);
    s.len() as i32
}

struct Point {
    x: i32,
}
""",
}

# What each sample's imports.scm must capture as @import.path, in order.
IMPORT_PATHS: dict[str, list[str]] = {
    "python": ["os", "collections", ".", "..pkg.mod"],
    "javascript": ["./mod", "fs", "old"],
    "typescript": ["./mod", "fs", "pkg"],
    "tsx": ["react", "react"],
    "go": ["fmt", "strings"],
    "java": ["java.util.List", "java.io"],
    "c": ["<stdio.h>", "local.h"],
    "cpp": ["<vector>", "local.hpp"],
    "csharp": ["System", "System.Collections.Generic"],
    "kotlin": ["kotlin.math.max", "java.util"],
    "rust": ["std::collections::HashMap", "std::io::{self, Read}"],
}

# A statement per language, typed at the cursor in the typing tests.
TYPED_STATEMENT: dict[str, str] = {
    "python": "y = x * 2\n    ",
    "javascript": "const y = x * 2;\n  ",
    "typescript": "const y = x * 2;\n  ",
    "tsx": "const y = x * 2;\n  ",
    "go": "y := x * 2\n\t",
    "java": "int y = x * 2;\n        ",
    "c": "int y = x * 2;\n    ",
    "cpp": "int y = x * 2;\n    ",
    "csharp": "var y = x * 2;\n            ",
    "kotlin": "val y = x * 2\n    ",
    "rust": "let y = x * 2;\n    ",
}

LANGUAGES = sorted(SAMPLES)
