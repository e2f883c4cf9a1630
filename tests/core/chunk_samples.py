"""Small source samples, one per language: imports, a class with two methods, a free function."""

SAMPLES: dict[str, tuple[str, str]] = {
    "python": (
        "pkg/shapes.py",
        '''import math
from typing import Sequence


class Circle:
    """A circle given by its radius, with helpers to measure it."""

    def __init__(self, radius: float) -> None:
        self.radius = radius
        self.label = "circle of radius " + str(radius)

    @property
    def area(self) -> float:
        # The classic formula for the area of a circle.
        return math.pi * self.radius * self.radius


def total_area(shapes: Sequence[Circle]) -> float:
    return sum(shape.area for shape in shapes)
''',
    ),
    "javascript": (
        "src/shapes.js",
        """import { pi } from "./math.js";
const DEFAULT = 1;

class Circle {
  constructor(radius) {
    this.radius = radius || DEFAULT;
    this.label = "circle of radius " + String(radius);
  }

  // The classic formula for the area of a circle.
  area() {
    return pi * this.radius * this.radius;
  }
}

export function totalArea(shapes) {
  return shapes.reduce((sum, shape) => sum + shape.area(), 0);
}
""",
    ),
    "typescript": (
        "src/shapes.ts",
        """import { pi } from "./math";

interface Shape {
  area(): number;
}

export class Circle implements Shape {
  private readonly label: string;

  constructor(private radius: number) {
    this.label = "circle of radius " + String(radius);
  }

  /** The classic formula for the area of a circle. */
  area(): number {
    return pi * this.radius * this.radius;
  }
}

export function totalArea(shapes: Shape[]): number {
  return shapes.reduce((sum, shape) => sum + shape.area(), 0);
}
""",
    ),
    "tsx": (
        "src/Badge.tsx",
        """import React from "react";

type Props = { label: string; count: number };

export class Badge extends React.Component<Props> {
  describe(): string {
    return this.props.label + " has " + String(this.props.count) + " items";
  }

  render() {
    return <span className="badge">{this.describe()}</span>;
  }
}

export function Counter({ count }: { count: number }) {
  return <b>{count}</b>;
}
""",
    ),
    "java": (
        "src/main/java/shapes/Circle.java",
        """package shapes;

import java.util.List;

public class Circle {
    private final double radius;

    public Circle(double radius) {
        this.radius = radius;
    }

    /** The classic formula for the area of a circle. */
    @Override
    public double area() {
        return Math.PI * radius * radius;
    }

    public static double totalArea(List<Circle> circles) {
        return circles.stream().mapToDouble(Circle::area).sum();
    }
}
""",
    ),
    "go": (
        "shapes/circle.go",
        """package shapes

import (
	"fmt"
	"math"
)

// Circle is a circle given by its radius.
type Circle struct {
	Radius float64
}

// Area is the classic formula for the area of a circle.
func (c *Circle) Area() float64 {
	return math.Pi * c.Radius * c.Radius
}

func (c Circle) String() string {
	return fmt.Sprintf("circle of radius %f", c.Radius)
}

func TotalArea(circles []Circle) float64 {
	total := 0.0
	for _, c := range circles {
		total += c.Area()
	}
	return total
}
""",
    ),
    "rust": (
        "src/shapes.rs",
        """use std::f64::consts::PI;
use std::fmt;

/// A circle given by its radius.
#[derive(Debug, Clone)]
pub struct Circle {
    pub radius: f64,
}

impl Circle {
    /// The classic formula for the area of a circle.
    pub fn area(&self) -> f64 {
        PI * self.radius * self.radius
    }

    pub fn scaled(&self, factor: f64) -> Circle {
        Circle { radius: self.radius * factor }
    }
}

pub fn total_area(circles: &[Circle]) -> f64 {
    circles.iter().map(|c| c.area()).sum()
}
""",
    ),
    "c": (
        "src/shapes.c",
        """#include <math.h>
#include "shapes.h"

struct circle {
    double radius;
    const char *label;
};

/* The classic formula for the area of a circle. */
static double circle_area(const struct circle *c) {
    return M_PI * c->radius * c->radius;
}

double total_area(const struct circle *circles, int n) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        total += circle_area(&circles[i]);
    }
    return total;
}
""",
    ),
    "cpp": (
        "src/shapes.cpp",
        """#include <cmath>
#include <vector>

namespace shapes {

class Circle {
public:
    explicit Circle(double radius) : radius_(radius) {}

    // The classic formula for the area of a circle.
    double area() const {
        return M_PI * radius_ * radius_;
    }

private:
    double radius_;
};

double total_area(const std::vector<Circle>& circles) {
    double total = 0.0;
    for (const auto& c : circles) total += c.area();
    return total;
}

}  // namespace shapes
""",
    ),
    "c_sharp": (
        "src/Shapes/Circle.cs",
        """using System;
using System.Collections.Generic;

namespace Shapes
{
    public class Circle
    {
        public double Radius { get; }

        public Circle(double radius)
        {
            Radius = radius;
        }

        /// <summary>The classic formula for the area of a circle.</summary>
        [Obsolete("use Measure")]
        public double Area()
        {
            return Math.PI * Radius * Radius;
        }
    }
}
""",
    ),
    "ruby": (
        "lib/shapes.rb",
        """require "set"
require_relative "math_helpers"

module Shapes
  class Circle
    attr_reader :radius

    def initialize(radius)
      @radius = radius
      @label = "circle of radius #{radius}"
    end

    # The classic formula for the area of a circle.
    def area
      Math::PI * radius * radius
    end
  end

  def self.total_area(circles)
    circles.sum(&:area)
  end
end
""",
    ),
    "php": (
        "src/Circle.php",
        """<?php

namespace Shapes;

use InvalidArgumentException;

class Circle
{
    private float $radius;

    public function __construct(float $radius)
    {
        $this->radius = $radius;
    }

    /** The classic formula for the area of a circle. */
    public function area(): float
    {
        return M_PI * $this->radius * $this->radius;
    }
}

function total_area(array $circles): float
{
    return array_sum(array_map(fn ($c) => $c->area(), $circles));
}
""",
    ),
    "kotlin": (
        "src/main/kotlin/shapes/Circle.kt",
        """package shapes

import kotlin.math.PI

class Circle(private val radius: Double) {
    val label: String = "circle of radius $radius"

    /** The classic formula for the area of a circle. */
    fun area(): Double {
        return PI * radius * radius
    }

    fun scaled(factor: Double): Circle {
        return Circle(radius * factor)
    }
}

fun totalArea(circles: List<Circle>): Double {
    return circles.sumOf { it.area() }
}
""",
    ),
    "scala": (
        "src/main/scala/shapes/Circle.scala",
        """package shapes

import scala.math.Pi

class Circle(val radius: Double) {
  val label: String = s"circle of radius $radius"

  /** The classic formula for the area of a circle. */
  def area: Double = {
    Pi * radius * radius
  }

  def scaled(factor: Double): Circle = {
    new Circle(radius * factor)
  }
}

object Shapes {
  def totalArea(circles: Seq[Circle]): Double = circles.map(_.area).sum
}
""",
    ),
    "bash": (
        "scripts/build.sh",
        """#!/usr/bin/env bash
set -euo pipefail
source ./lib.sh

# Print a message in bold to standard error.
log() {
  printf '\\033[1m%s\\033[0m\\n' "$*" >&2
}

build() {
  log "building $1"
  mkdir -p "out/$1"
  cp -r "src/$1/." "out/$1/"
}

for target in app docs; do
  build "$target"
done
""",
    ),
}
